"""Pausing and resuming a VM's vCPU threads: the primitive behind stop/cont and gdb.

Every vCPU has its own thread, which alternates between two places: inside
``KVMVCPU.run`` (the guest executes) and parked on this object's condition variable.
A vCPU may run only while its index is in ``allowed``.  ``pause`` empties that set and
kicks every vCPU (immediate_exit plus a signal, see ``KVMVCPU.kick``), then waits until
all of them are parked, so that afterwards nothing executes guest code and other threads
may read or change vCPU state with the ordinary ioctls.  ``resume`` lets all vCPUs run
again, or just one (a debugger's single step).

The ordering that makes this race-free: a thread clears its vCPU's ``stop_requested``
while holding the lock, before it looks at ``allowed``; ``pause`` changes ``allowed``
and kicks under the same lock.  So either the thread sees the new ``allowed`` and parks,
or it is already on its way into ``run`` and finds ``stop_requested`` set there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pemu import threads
from pemu.accel.kvm.vcpu import KVMVCPU

VCPUBody = Callable[[KVMVCPU], None]


class VCPURunner:
    """Threads for ``vcpus``; each calls ``body(vcpu)`` (usually ``vcpu.run(board)``)
    whenever it is allowed to run and returns to its parking place when that returns."""

    def __init__(self, vcpus: list[KVMVCPU], body: VCPUBody, start_paused: bool = False
                 ) -> None:
        self.vcpus = vcpus
        self._body = body
        self._cond = threading.Condition()
        self._allowed: set[int] = set() if start_paused else {v.index for v in vcpus}
        self._parked: set[int] = set()
        self._gone: set[int] = set()  # threads that ended (error or shutdown)
        self._finished = False
        self._started = False  # before start() nothing runs: counts as parked
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self._started = True
        for vcpu in self.vcpus:
            t = threading.Thread(target=self._thread, args=(vcpu,), name=f"vcpu{vcpu.index}",
                                 daemon=True)
            self.threads.append(threads.start(t))

    # -- control (any thread but a vCPU's own, for the blocking ones) ---------------------
    def pause(self, timeout: float | None = 10.0) -> bool:
        """Stop every vCPU; returns once all are parked (False on timeout)."""
        with self._cond:
            self._stop_all_locked()
            return self._cond.wait_for(self._all_parked, timeout)

    def request_pause(self) -> None:
        """Non-blocking pause, safe on a vCPU thread (e.g. at a breakpoint exit)."""
        with self._cond:
            self._stop_all_locked()

    def wait_paused(self, timeout: float | None = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(self._all_parked, timeout)

    def resume(self, only: int | None = None) -> None:
        """Let every vCPU run, or only vCPU ``only`` (the others stay parked)."""
        with self._cond:
            if self._finished:
                return
            self._allowed = {only} if only is not None else {v.index for v in self.vcpus}
            self._cond.notify_all()

    def shutdown(self) -> None:
        """End every thread (the board is exiting); does not wait."""
        with self._cond:
            self._finished = True
            self._allowed = set()
            for vcpu in self.vcpus:
                vcpu.kick()
            self._cond.notify_all()

    def join(self, timeout: float = 2.0) -> None:
        for t in self.threads:
            t.join(timeout)

    @property
    def paused(self) -> bool:
        with self._cond:
            return not self._allowed and self._all_parked()

    def thread_id(self, index: int) -> int:
        """The host thread id of vCPU ``index`` (0 before start)."""
        for vcpu, t in zip(self.vcpus, self.threads, strict=False):
            if vcpu.index == index:
                return t.native_id or 0
        return 0

    def is_running(self, index: int) -> bool:
        with self._cond:
            return index in self._allowed

    # -- internals -------------------------------------------------------------------------
    def _stop_all_locked(self) -> None:
        self._allowed = set()
        for vcpu in self.vcpus:
            vcpu.kick()

    def _all_parked(self) -> bool:
        if not self._started:
            return True
        return all(v.index in self._parked or v.index in self._gone for v in self.vcpus)

    def _thread(self, vcpu: KVMVCPU) -> None:
        i = vcpu.index
        try:
            while True:
                with self._cond:
                    vcpu.stop_requested = False
                    while not self._finished and i not in self._allowed:
                        self._parked.add(i)
                        self._cond.notify_all()
                        self._cond.wait()
                    self._parked.discard(i)
                    if self._finished:
                        return
                self._body(vcpu)
        finally:
            with self._cond:
                self._gone.add(i)
                self._parked.discard(i)
                self._cond.notify_all()
