"""The machine's drives and block nodes as the monitor sees and changes them.

Boards register each drive's ``BlockBackend`` here (``add_drive``) when they build
devices.  Registration slips an ``AccountingNode`` filter on top of the backend's node:
it counts operations and bytes for query-blockstats and turns an I/O error into a
BLOCK_IO_ERROR event before passing it on to the device, which is where QEMU reports
them too.  Devices keep their ``BlockBackend``; snapshots and resizes change the node
graph under it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pemu.block.accounting import STAT_KEYS, AccountingNode
from pemu.block.backend import BlockBackend
from pemu.block.drive import open_drive
from pemu.block.errors import BlockError
from pemu.block.node import BlockNode
from pemu.block.overlay import snapshot_overlay
from pemu.monitor.errors import DEVICE_NOT_FOUND, QMPError
from pemu.monitor.events import EventBus


@dataclass
class Drive:
    """A device's drive: ``-drive id=...`` (or a -blockdev node bound to a device)."""

    id: str
    backend: BlockBackend
    node_name: str
    qdev: str = ""
    filter: AccountingNode | None = field(default=None, repr=False)
    removable: bool = False  # a CD: QMP adds its tray
    io_status: bool = True  # QEMU's nvme keeps no I/O status: no "io-status" field

    @property
    def device(self) -> str:
        """The name QMP's ``device`` shows: a -blockdev node bound to a device (its
        node-name is its id) has no BlockBackend name in QEMU, so it shows "" and is
        known by node-name and qdev (libvirt keys on those, and refuses duplicates)."""
        return "" if self.node_name == self.id else self.id

    @property
    def top(self) -> BlockNode:
        """The image layer the guest sees (under our accounting filter)."""
        return self.filter.child if self.filter is not None else self.backend.node


def _chain(node: BlockNode) -> list[BlockNode]:
    out = []
    seen = 0
    while node is not None and seen < 64:
        out.append(node)
        node = node.backing
        seen += 1
    return out


def _image_info(node: BlockNode) -> dict[str, object]:
    info: dict[str, object] = {"filename": node.filename, "format": node.format_name,
                               "virtual-size": node.size, "dirty-flag": False}
    try:
        info["actual-size"] = node.allocated_file_size()
    except (BlockError, OSError, AttributeError):
        pass
    if node.backing is not None:
        info["backing-filename"] = node.backing.filename
        info["full-backing-filename"] = node.backing.filename
        info["backing-image"] = _image_info(node.backing)
    return info


class BlockDevices:
    def __init__(self, events: EventBus) -> None:
        self.events = events
        self.drives: dict[str, Drive] = {}
        self.nodes: dict[str, BlockBackend] = {}  # blockdev-add nodes not bound to a device
        self._lock = threading.RLock()
        self._anon = 0

    # -- boards -----------------------------------------------------------------------
    def add_drive(self, drive_id: str, backend: BlockBackend, qdev: str = "",
                  node_name: str | None = None, removable: bool = False,
                  io_status: bool = True) -> Drive:
        """Register a device's drive so the monitor can list, count and change it."""
        with self._lock:
            if node_name is None:
                self._anon += 1
                node_name = f"#block{self._anon:03d}"
            drive = Drive(drive_id, backend, node_name, qdev, removable=removable,
                          io_status=io_status)

            def report(operation: str, nospace: bool, reason: str) -> None:
                self.events.emit("BLOCK_IO_ERROR", {
                    "device": drive_id, "node-name": node_name, "operation": operation,
                    "action": "report", "nospace": nospace, "reason": reason})

            drive.filter = AccountingNode(backend.node, report)
            backend.node = drive.filter
            self.drives[drive_id] = drive
            return drive

    def attach_drive(self, drive_id: str, qdev: str, removable: bool,
                     io_status: bool) -> None:
        """A listed drive that no device held (-drive if=none) was taken by device_add."""
        with self._lock:
            drive = self.drives[drive_id]
            drive.qdev, drive.removable, drive.io_status = qdev, removable, io_status

    def drop_drive(self, drive_id: str) -> None:
        """Its device was unplugged and the drive went with it (QEMU deletes a -drive
        with its device); the board closes the backend."""
        with self._lock:
            self.drives.pop(drive_id, None)

    def node_backend(self, node_name: str) -> BlockBackend | None:
        """A blockdev-add node no device uses yet (device_add drive=NODE opens it)."""
        with self._lock:
            return self.nodes.get(node_name)

    def bind_node(self, node_name: str, qdev: str) -> None:
        """device_add made a blockdev-add node a device's drive: from now on it is
        listed and counted as a -blockdev drive is (by node-name and qdev)."""
        with self._lock:
            backend = self.nodes.pop(node_name)
            self.add_drive(node_name, backend, qdev=qdev, node_name=node_name)

    def unbind_node(self, node_name: str) -> None:
        """Its device is gone (device_del): the node stays, unused, until blockdev-del
        closes it, as in QEMU (libvirt deletes it after DEVICE_DELETED)."""
        with self._lock:
            drive = self.drives.pop(node_name, None)
            if drive is None:
                return
            if drive.filter is not None:
                drive.backend.node = drive.filter.child
            self.nodes[node_name] = drive.backend

    # -- lookups ------------------------------------------------------------------------
    def find(self, device: str | None = None, node_name: str | None = None) -> Drive:
        with self._lock:
            if device is not None:
                drive = self.drives.get(device)
                if drive is None:
                    raise QMPError(f"Device '{device}' not found", DEVICE_NOT_FOUND)
                return drive
            if node_name is not None:
                for drive in self.drives.values():
                    if drive.node_name == node_name:
                        return drive
                raise QMPError(f"Cannot find device='' nor node-name='{node_name}'")
        raise QMPError("Parameter 'device' or 'node-name' is missing")

    # -- queries --------------------------------------------------------------------------
    def query_block(self) -> list[dict[str, object]]:
        out = []
        with self._lock:
            for drive in self.drives.values():
                top = drive.top
                entry: dict[str, object] = {
                    "device": drive.device, "locked": False, "removable": drive.removable,
                    "type": "unknown",
                }
                if drive.io_status:
                    entry["io-status"] = "ok"
                if drive.removable and drive.qdev:  # an unattached -drive has no tray
                    entry["tray_open"] = False  # a CD's medium never leaves: no eject
                if drive.qdev:
                    entry["qdev"] = drive.qdev
                entry["inserted"] = {
                    "file": top.filename, "node-name": drive.node_name,
                    "ro": drive.backend.read_only, "drv": top.format_name,
                    "backing_file_depth": len(_chain(top)) - 1, "encrypted": False,
                    "detect_zeroes": drive.backend.detect_zeroes,
                    "bps": 0, "bps_rd": 0, "bps_wr": 0, "iops": 0, "iops_rd": 0, "iops_wr": 0,
                    "write_threshold": 0,
                    "cache": {"writeback": True, "direct": False, "no-flush": False},
                    "image": _image_info(top),
                }
                if top.backing is not None:
                    entry["inserted"]["backing_file"] = top.backing.filename  # type: ignore
                out.append(entry)
        return out

    def query_blockstats(self) -> list[dict[str, object]]:
        out = []
        with self._lock:
            for drive in self.drives.values():
                stats = drive.filter.snapshot() if drive.filter else dict.fromkeys(STAT_KEYS, 0)
                stats.update({"invalid_rd_operations": 0, "invalid_wr_operations": 0,
                              "invalid_flush_operations": 0, "account_invalid": False,
                              "account_failed": True, "timed_stats": []})
                out.append({"device": drive.device, "node-name": drive.node_name,
                            "qdev": drive.qdev, "stats": stats})
        return out

    def query_named_nodes(self) -> list[dict[str, object]]:
        """Every node with a name, as QEMU lists them: the devices' drives (libvirt
        reads a -blockdev disk's sizes here, by node-name) and the blockdev-add nodes."""
        with self._lock:
            named = [(d.node_name, d.top, d.backend.read_only) for d in self.drives.values()]
            named += [(name, be.node, be.read_only) for name, be in self.nodes.items()]
            return [{"node-name": name, "drv": node.format_name, "file": node.filename,
                     "ro": ro, "image": _image_info(node)} for name, node, ro in named]

    # -- changes ----------------------------------------------------------------------------
    def blockdev_add(self, args: dict[str, object]) -> None:
        node_name = args["node-name"]
        assert isinstance(node_name, str)
        with self._lock:
            if node_name in self.nodes or any(d.node_name == node_name
                                              for d in self.drives.values()):
                raise QMPError(f"Duplicate nodes with node-name='{node_name}'")
            opts = self._drive_options(args)
            try:
                backend = open_drive(opts)
            except (BlockError, OSError) as e:
                raise QMPError(str(getattr(e, "strerror", None) or e)) from None
            self.nodes[node_name] = backend

    def _drive_options(self, args: dict[str, object]) -> dict[str, str]:
        driver = str(args["driver"])
        opts: dict[str, str] = {"driver": driver}
        if driver == "file":
            filename = args.get("filename")
            if not isinstance(filename, str):
                raise QMPError("Parameter 'filename' is missing")
            opts["filename"] = filename
        else:
            file = args.get("file")
            if isinstance(file, str):  # a reference to a node added before
                ref = self.nodes.get(file)
                if ref is None:
                    raise QMPError(f"Cannot find device='' nor node-name='{file}'")
                opts["file.filename"] = ref.node.filename
            elif isinstance(file, dict) and isinstance(file.get("filename"), str):
                if file.get("driver", "file") != "file":
                    raise QMPError("only driver 'file' is supported under a format node")
                opts["file.filename"] = file["filename"]
            else:
                raise QMPError("Parameter 'file' is missing")
        # libvirt writes "backing": null on every format node (open no backing node);
        # a node named as backing is not implemented: the image's own backing file opens
        if args.get("backing") is not None:
            raise QMPError("Parameter 'backing': a backing node is not implemented in pemu "
                           "(the image's own backing file is opened)")
        if args.get("read-only"):
            opts["read-only"] = "on"
        if isinstance(args.get("discard"), str):
            opts["discard"] = str(args["discard"])
        return opts

    def blockdev_del(self, node_name: str) -> None:
        with self._lock:
            for drive in self.drives.values():
                if drive.node_name == node_name:
                    raise QMPError(f"Node '{node_name}' is busy: node is used as root of "
                                   f"device '{drive.id}'")
            backend = self.nodes.pop(node_name, None)
            if backend is None:
                raise QMPError(f"Failed to find node with node-name='{node_name}'")
            backend.close()

    def resize(self, device: str | None, node_name: str | None, size: int) -> None:
        with self._lock:
            if node_name is not None and node_name in self.nodes:
                node = self.nodes[node_name].node
            else:
                node = self.find(device, node_name).top
            if size < 0:
                raise QMPError("Parameter 'size' must be non-negative")
            try:
                node.resize(size, shrink=True)
            except (BlockError, OSError) as e:
                raise QMPError(f"Could not resize: {e}") from None

    def snapshot_sync(self, device: str | None, node_name: str | None, snapshot_file: str,
                      snapshot_node_name: str | None, fmt: str, mode: str) -> None:
        """Put a new overlay over the drive; the old top becomes its read-only backing."""
        with self._lock:
            drive = self.find(device, node_name)
            old = drive.top
            try:
                drive.backend.flush()
                overlay = snapshot_overlay(old, snapshot_file, fmt,
                                           create=mode == "absolute-paths")
            except (BlockError, OSError) as e:
                raise QMPError(str(e)) from None
            assert drive.filter is not None
            drive.filter.child = overlay
            if snapshot_node_name:
                drive.node_name = snapshot_node_name

    def close(self) -> None:
        with self._lock:
            for backend in self.nodes.values():
                backend.close()
            self.nodes.clear()
