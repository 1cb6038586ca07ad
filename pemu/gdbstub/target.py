"""What the GDB stub needs from the thing being debugged.

A ``DebugTarget`` is one machine (all its harts/vCPUs) or one user-mode process (all
its threads), in GDB's all-stop mode: when one thread stops, every thread stops.
The stub calls the methods below from its connection thread; the target reports
stops asynchronously through the ``on_stop`` callback the stub installs, from
whatever thread noticed the stop (usually a vCPU thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SIGINT = 2
SIGTRAP = 5

# Z packet types
BP_SOFTWARE = 0
BP_HARDWARE = 1
WP_WRITE = 2
WP_READ = 3
WP_ACCESS = 4
WATCH_NAMES = {WP_WRITE: "watch", WP_READ: "rwatch", WP_ACCESS: "awatch"}


class TargetError(Exception):
    """A request the target cannot satisfy (bad address, unknown register); -> ``E..``."""

    def __init__(self, message: str, errno: int = 14) -> None:
        super().__init__(message)
        self.errno = errno


@dataclass
class StopEvent:
    """Why the target stopped; becomes a ``T``, ``W`` or ``X`` stop reply."""

    signal: int = SIGTRAP
    thread: int | None = None
    watch_kind: int | None = None  # WP_* when a watchpoint fired
    watch_addr: int = 0
    exited: int | None = None  # exit status: the process is gone (W)
    killed_by: int | None = None  # terminating signal (X)


StopCallback = Callable[[StopEvent], None]


class DebugTarget:
    arch = "riscv64"
    pc_regnum = 32  # for "c ADDR" / "s ADDR"
    pc_size = 8

    def __init__(self) -> None:
        self.on_stop: StopCallback | None = None

    # -- description -------------------------------------------------------------------
    def target_xml(self) -> dict[str, str]:
        """Annex name -> XML text; must include ``target.xml``."""
        raise NotImplementedError

    def threads(self) -> list[int]:
        """GDB thread ids (positive), one per hart, vCPU or guest thread."""
        raise NotImplementedError

    # -- state (only while stopped) -------------------------------------------------------
    def read_registers(self, thread: int) -> bytes:
        """The ``g`` packet: the core registers in target.xml order, target byte order."""
        raise NotImplementedError

    def write_registers(self, thread: int, data: bytes) -> None:
        raise NotImplementedError

    def read_register(self, thread: int, regno: int) -> bytes:
        raise NotImplementedError

    def write_register(self, thread: int, regno: int, value: bytes) -> None:
        raise NotImplementedError

    def read_memory(self, thread: int, addr: int, length: int) -> bytes:
        raise NotImplementedError

    def write_memory(self, thread: int, addr: int, data: bytes) -> None:
        raise NotImplementedError

    # -- breakpoints ----------------------------------------------------------------------
    def insert_point(self, kind: int, addr: int, length: int) -> bool:
        """Z packets; False means "not supported" (empty reply)."""
        return False

    def remove_point(self, kind: int, addr: int, length: int) -> bool:
        return False

    def remove_all_points(self) -> None:
        pass

    # -- execution --------------------------------------------------------------------------
    def resume(self, step_thread: int | None) -> None:
        """Run: everything, or only ``step_thread`` for exactly one instruction.

        Returns at once; the stop comes later through ``on_stop``.
        """
        raise NotImplementedError

    def resume_threads(self, threads: frozenset[int]) -> None:
        """Run only these threads; the others stay stopped (``vCont;c:N``, how GDB
        moves one thread over a breakpoint).  A target that cannot hold some of its
        threads lets them all run."""
        self.resume(None)

    def interrupt(self) -> None:
        """Ctrl-C: stop everything soon and report SIGINT."""
        raise NotImplementedError

    def attached(self) -> None:
        """A debugger connected (system mode stops the machine here)."""

    def detach(self) -> None:
        """The debugger leaves: drop breakpoints and let the target run freely."""
        self.remove_all_points()

    def kill(self) -> None:
        raise NotImplementedError

    def thread_alive(self, thread: int) -> bool:
        return thread in self.threads()

    def thread_description(self, thread: int) -> str:
        return ""

    def report(self, event: StopEvent) -> None:
        callback = self.on_stop
        if callback is not None:
            callback(event)
