"""QMP jobs (QEMU's job API): query-jobs, job-dismiss, JOB_STATUS_CHANGE events.

A job runs its work on its own thread and walks QEMU's status sequence: created,
running, then waiting, pending, concluded (or aborting, concluded with an error).
Jobs are dismissed by hand (``job-dismiss``), as QEMU's snapshot jobs are, so that a
client can read the error of a failed job from query-jobs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from pemu import threads
from pemu.monitor.errors import QMPError
from pemu.monitor.events import EventBus


class Job:
    def __init__(self, job_id: str, job_type: str) -> None:
        self.id = job_id
        self.type = job_type
        self.status = "created"
        self.error: str | None = None
        self.progress = (0, 1)
        self.done = threading.Event()

    def info(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "type": self.type, "status": self.status,
                                  "current-progress": self.progress[0],
                                  "total-progress": self.progress[1]}
        if self.error is not None:
            out["error"] = self.error
        return out


class JobRegistry:
    def __init__(self, events: EventBus) -> None:
        self.events = events
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()  # RLock: held across ``concluding``

    def _set(self, job: Job, status: str) -> None:
        job.status = status
        self.events.emit("JOB_STATUS_CHANGE", {"id": job.id, "status": status})

    # -- jobs that run themselves (block jobs: pemu/monitor/block_jobs.py) -------------
    def adopt(self, job: Job) -> None:
        """List a job that drives its own status (with ``set_status``)."""
        with self._lock:
            if job.id in self._jobs:
                raise QMPError(f"Job ID '{job.id}' already in use")
            self._jobs[job.id] = job
        self._set(job, "created")

    def set_status(self, job: Job, status: str) -> None:
        self._set(job, status)

    @contextlib.contextmanager
    def concluding(self) -> Iterator[None]:
        """Hold the job list while a job emits its last events and leaves it: a client
        that answers BLOCK_JOB_COMPLETED with query-block-jobs finds the job gone, as
        under QEMU, which does all of it in one turn of its main loop."""
        with self._lock:
            yield

    def find(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise QMPError(f"Job not found: '{job_id}'")
        return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def remove(self, job: Job) -> None:
        """Auto-dismiss: the concluded job disappears (status null)."""
        with self._lock:
            self._jobs.pop(job.id, None)
        self._set(job, "null")

    def start(self, job_id: str, job_type: str, work: Callable[[], None]) -> Job:
        """Create the job and run ``work`` on a thread; an exception fails the job."""
        with self._lock:
            if job_id in self._jobs:
                raise QMPError(f"Job ID '{job_id}' already in use")
            job = self._jobs[job_id] = Job(job_id, job_type)
        self._set(job, "created")

        def run() -> None:
            self._set(job, "running")
            try:
                work()
            except Exception as e:  # noqa: BLE001 - the job's error is the user's answer
                job.error = str(e)
                self._set(job, "aborting")
            else:
                job.progress = (1, 1)
                self._set(job, "waiting")
                self._set(job, "pending")
            self._set(job, "concluded")
            job.done.set()

        threads.start_daemon(run, name=f"pemu-job-{job_id}")
        return job

    def query(self) -> list[dict[str, object]]:
        with self._lock:
            return [j.info() for j in self._jobs.values()]

    def dismiss(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise QMPError(f"Job not found: '{job_id}'")
            if job.status != "concluded":
                raise QMPError(f"Job '{job_id}' in state '{job.status}' cannot accept "
                               "command verb 'dismiss'")
            del self._jobs[job_id]
        self._set(job, "null")


__all__ = ["Job", "JobRegistry"]
