"""Block mirror jobs (QEMU's mirror job): QMP ``drive-mirror``, ``blockdev-mirror``,
``block-job-complete``/``job-complete``, ``block-job-cancel``/``job-cancel``,
``query-block-jobs``; events BLOCK_JOB_READY, BLOCK_JOB_COMPLETED,
BLOCK_JOB_CANCELLED and the job's JOB_STATUS_CHANGE.

A job puts a ``MirrorNode`` (pemu/block/mirror.py) under the drive's accounting
filter, copies the source to the target on its thread, and is *ready* (event
BLOCK_JOB_READY) once the copy went over the disk: from then on the target equals
the source, guest writes going to both.  ``block-job-complete`` pivots: the drive
goes on with the target as its image, the source is closed.  ``block-job-cancel`` of
a ready job leaves the drive on the source with the target a consistent copy
(BLOCK_JOB_COMPLETED, as QEMU), before ready (or with force) it abandons the copy
(BLOCK_JOB_CANCELLED).  Block jobs dismiss themselves (auto-dismiss, QEMU's default).

Storage migration without shared storage: mirror each disk to a target on the
destination's storage, wait for BLOCK_JOB_READY, migrate, then complete (or cancel)
the jobs; pemu has no NBD server, so the target is a path the destination can open
(a shared or copied-to directory).
"""

from __future__ import annotations

import os
import threading

from pemu import threads
from pemu.block.drive import open_drive
from pemu.block.errors import BlockError
from pemu.block.mirror import SYNC_MODES, MirrorNode, copy_pass
from pemu.block.node import BlockNode
from pemu.block.qcow2 import create_qcow2
from pemu.monitor.block_devices import Drive
from pemu.monitor.errors import DEVICE_NOT_ACTIVE, QMPError
from pemu.monitor.jobs import Job

JOB_TYPE = "mirror"


class MirrorJob(Job):
    def __init__(self, machine, job_id: str, drive: Drive, target: BlockNode,  # noqa: ANN001
                 sync: str, speed: int, target_zero: bool,
                 target_node_name: str | None) -> None:
        super().__init__(job_id, JOB_TYPE)
        self.machine = machine
        self.drive = drive
        self.sync = sync
        self.speed = speed
        self.target_zero = target_zero
        self.target_node_name = target_node_name
        self.offset = 0
        self.length = drive.backend.size
        self.ready = False
        self._verb: str | None = None  # "complete" | "cancel" | "force-cancel"
        self._wake = threading.Event()
        assert drive.filter is not None
        self.source = drive.filter.child
        self.node = MirrorNode(self.source, target)  # the job owns the target node

    # -- what QMP shows -------------------------------------------------------------------
    def block_info(self) -> dict[str, object]:
        return {"type": JOB_TYPE, "device": self.id, "len": self.length,
                "offset": self.offset, "busy": not self.ready and self.status == "running",
                "paused": False, "speed": self.speed, "io-status": "ok",
                "ready": self.ready, "status": self.status, "auto-finalize": True,
                "auto-dismiss": True}

    def _event_data(self) -> dict[str, object]:
        return {"type": JOB_TYPE, "device": self.id, "len": self.length,
                "offset": self.offset, "speed": self.speed}

    # -- the job's thread -----------------------------------------------------------------
    def run(self) -> None:
        jobs, events = self.machine.jobs, self.machine.events
        self.drive.filter.child = self.node  # guest writes go to both from now on
        jobs.set_status(self, "running")
        try:
            copied = copy_pass(self.node, self.sync, self.target_zero, self._progress,
                               lambda: self._verb is not None, lambda: self.speed)
            self.node.target.flush() if self.node.target is not None else None
        except (BlockError, OSError) as e:
            self._finish(error=str(e))
            return
        if copied:
            self.ready = True
            self.offset = self.length
            jobs.set_status(self, "ready")
            events.emit("BLOCK_JOB_READY", self._event_data())
            self._wake.wait()
        self._finish()

    def _progress(self, done: int, total: int) -> None:
        self.offset, self.length = done, total
        self.progress = (done, total)

    def _finish(self, error: str | None = None) -> None:
        jobs, events = self.machine.jobs, self.machine.events
        verb = self._verb
        pivot = error is None and verb == "complete"
        abandon = error is not None or verb == "force-cancel" or not self.ready
        target = self.node.detach()  # no more writes to the target
        with self.machine.block._lock:
            if pivot:
                self.drive.filter.child = target
                if self.target_node_name:
                    self.drive.node_name = self.target_node_name
            else:
                self.drive.filter.child = self.source
        try:
            if pivot:
                self.source.close()
            elif target is not None:
                target.flush()
                target.close()
        except (BlockError, OSError) as e:
            error = error or str(e)
        data = self._event_data()
        with jobs.concluding():
            if error is not None:
                self.error = error
                jobs.set_status(self, "aborting")
                data["error"] = error
                events.emit("BLOCK_JOB_COMPLETED", data)
            elif abandon:
                jobs.set_status(self, "aborting")
                events.emit("BLOCK_JOB_CANCELLED", data)
            else:
                jobs.set_status(self, "waiting")
                jobs.set_status(self, "pending")
                events.emit("BLOCK_JOB_COMPLETED", data)
            jobs.set_status(self, "concluded")
            self.done.set()
            jobs.remove(self)

    # -- verbs (monitor thread) -------------------------------------------------------------
    def complete(self) -> None:
        if not self.ready:
            raise QMPError(f"The active block job '{self.id}' cannot be completed")
        self._verb = "complete"
        self._wake.set()

    def cancel(self, force: bool = False) -> None:
        self._verb = "force-cancel" if force else "cancel"
        self._wake.set()


def _find_drive(machine, device: str) -> Drive:  # noqa: ANN001
    block = machine.block
    try:
        return block.find(device=device)
    except QMPError:
        try:
            return block.find(node_name=device)
        except QMPError:
            raise QMPError(f"Cannot find device='{device}' nor node-name='{device}'") \
                from None


def _busy(machine, drive: Drive) -> None:  # noqa: ANN001
    for job in machine.jobs.jobs():
        if isinstance(job, MirrorJob) and job.drive is drive and job.status != "concluded":
            raise QMPError(f"Node '{drive.node_name}' is busy: block device is in use by "
                           "block job: mirror")


def _create_target(path: str, fmt: str, drive: Drive, sync: str) -> None:
    """mode=absolute-paths: a new image of the drive's size; with sync=top it has the
    source's backing file as its own (only the top layer is copied)."""
    top = drive.top
    size = drive.backend.size
    backing = top.backing if sync == "top" else None
    try:
        if fmt == "qcow2":
            create_qcow2(path, size,
                         backing_file=os.path.abspath(backing.filename) if backing else None,
                         backing_fmt=backing.format_name if backing else None)
        elif fmt == "raw" and backing is None:
            with open(path, "wb") as f:
                f.truncate(size)
        else:
            raise QMPError(f"drive-mirror: cannot create a '{fmt}' target"
                           + (" with a backing file (use qcow2)" if backing else ""))
    except OSError as e:
        raise QMPError(f"Could not create '{path}': {e.strerror or e}") from None


def _check_args(sync: str, speed: int) -> None:
    if sync not in SYNC_MODES:  # incremental and bitmap need dirty bitmaps pemu lacks
        raise QMPError(f"Parameter 'sync' does not accept value '{sync}' (pemu mirrors "
                       f"with sync {', '.join(SYNC_MODES)})")
    if speed < 0:
        raise QMPError("Parameter 'speed' expects a non-negative value")


def start_mirror(machine, job_id: str | None, device: str, target: BlockNode,  # noqa: ANN001
                 sync: str, speed: int = 0, target_zero: bool = False,
                 target_node_name: str | None = None) -> MirrorJob:
    drive = _find_drive(machine, device)
    _check_args(sync, speed)
    if target.size != drive.backend.size:
        target.close()
        raise QMPError("Source and target image have different sizes")
    job = MirrorJob(machine, job_id or device, drive, target, sync, speed, target_zero,
                    target_node_name)
    machine.jobs.adopt(job)
    threads.start_daemon(job.run, name=f"pemu-mirror-{job.id}")
    return job


def drive_mirror(machine, args: dict) -> None:  # noqa: ANN001
    drive = _find_drive(machine, args["device"])
    _busy(machine, drive)
    sync = args["sync"]
    _check_args(sync, args.get("speed", 0))
    path = args["target"]
    mode = args.get("mode", "absolute-paths")
    fmt = args.get("format") or drive.top.format_name
    if mode == "absolute-paths":
        _create_target(path, fmt, drive, sync)
    elif not os.path.exists(path):
        raise QMPError(f"Could not open '{path}': No such file or directory")
    try:
        target = open_drive({"file": path, "format": fmt})
    except (BlockError, OSError) as e:
        raise QMPError(f"Could not open '{path}': {getattr(e, 'strerror', None) or e}") \
            from None
    # a target the job created reads as zeroes (or as the backing, for top): skip those
    start_mirror(machine, args.get("job-id"), args["device"], target.node, sync,
                 args.get("speed", 0), target_zero=mode == "absolute-paths",
                 target_node_name=args.get("node-name"))
    target.node = None  # the job owns the node now; the backend wrapper is dropped


def blockdev_mirror(machine, args: dict) -> None:  # noqa: ANN001
    drive = _find_drive(machine, args["device"])
    _busy(machine, drive)
    _check_args(args["sync"], args.get("speed", 0))
    name = args["target"]
    backend = machine.block.nodes.get(name)
    if backend is None:
        raise QMPError(f"Cannot find device='' nor node-name='{name}'")
    if backend.read_only:
        raise QMPError(f"Block node '{name}' is read-only")
    node = backend.node
    start_mirror(machine, args.get("job-id"), args["device"], node, args["sync"],
                 args.get("speed", 0), target_node_name=name)
    with machine.block._lock:  # the node belongs to the job (and then to the drive)
        machine.block.nodes.pop(name, None)


def _find_job(machine, job_id: str) -> MirrorJob:  # noqa: ANN001
    for job in machine.jobs.jobs():
        if isinstance(job, MirrorJob) and job.id == job_id:
            return job
    raise QMPError(f"Block job '{job_id}' not found", DEVICE_NOT_ACTIVE)


def register(schema) -> None:  # noqa: ANN001
    s, command = schema, schema.command
    s.enum("MirrorSyncMode", ["top", "full", "none", "incremental", "bitmap"])
    s.struct("BlockJobInfo", {"type": "str", "device": "str", "len": "int",
                              "offset": "int", "busy": "bool", "paused": "bool",
                              "speed": "int", "io-status": "str", "ready": "bool",
                              "status": "JobStatus", "auto-finalize": "bool",
                              "auto-dismiss": "bool"})
    job_event = {"type": "str", "device": "str", "len": "int", "offset": "int",
                 "speed": "int"}
    s.event("BLOCK_JOB_READY", job_event)
    s.event("BLOCK_JOB_COMPLETED", {**job_event, "*error": "str"})
    s.event("BLOCK_JOB_CANCELLED", job_event)

    @command("drive-mirror", {"*job-id": "str", "device": "str", "target": "str",
                              "*format": "str", "*node-name": "str", "*replaces": "str",
                              "sync": "MirrorSyncMode", "*mode": "NewImageMode",
                              "*speed": "int", "*granularity": "int", "*buf-size": "int",
                              "*unmap": "bool", "*copy-mode": "str",
                              "*auto-finalize": "bool", "*auto-dismiss": "bool"})
    def drive_mirror_cmd(ctx, **kw) -> None:  # noqa: ANN001
        drive_mirror(ctx.machine, {k.replace("_", "-"): v for k, v in kw.items()})

    @command("blockdev-mirror", {"*job-id": "str", "device": "str", "target": "str",
                                 "*replaces": "str", "sync": "MirrorSyncMode",
                                 "*speed": "int", "*granularity": "int",
                                 "*buf-size": "int", "*copy-mode": "str",
                                 "*auto-finalize": "bool", "*auto-dismiss": "bool"})
    def blockdev_mirror_cmd(ctx, **kw) -> None:  # noqa: ANN001
        blockdev_mirror(ctx.machine, {k.replace("_", "-"): v for k, v in kw.items()})

    @command("query-block-jobs", returns="[BlockJobInfo]")
    def query_block_jobs(ctx) -> list:  # noqa: ANN001
        return [j.block_info() for j in ctx.machine.jobs.jobs() if isinstance(j, MirrorJob)]

    @command("block-job-complete", {"device": "str"})
    def block_job_complete(ctx, device: str) -> None:  # noqa: ANN001
        _find_job(ctx.machine, device).complete()

    @command("job-complete", {"id": "str"})
    def job_complete(ctx, id: str) -> None:  # noqa: ANN001, A002
        _find_job(ctx.machine, id).complete()

    @command("block-job-cancel", {"device": "str", "*force": "bool"})
    def block_job_cancel(ctx, device: str, force: bool = False) -> None:  # noqa: ANN001
        _find_job(ctx.machine, device).cancel(force)

    @command("job-cancel", {"id": "str"})
    def job_cancel(ctx, id: str) -> None:  # noqa: ANN001, A002
        # job-cancel of a ready mirror is QEMU's block-job-cancel without force
        _find_job(ctx.machine, id).cancel()
