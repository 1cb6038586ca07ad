"""vCont read per thread, as the GDB remote protocol says: the leftmost action naming
a thread (or naming none) is that thread's; threads no action covers stay stopped.
The real thing with gdb-multiarch and two harts: tests/system/test_mttcg_machine.py."""

from __future__ import annotations

import pytest

from pemu.gdbstub.protocol import GdbSession
from pemu.gdbstub.target import DebugTarget


class ThreeThreads(DebugTarget):
    """Records how the stub resumes it."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed: list[tuple[str, object]] = []

    def threads(self) -> list[int]:
        return [1, 2, 3]

    def resume(self, step_thread: int | None) -> None:
        self.resumed.append(("all" if step_thread is None else "step", step_thread))

    def resume_threads(self, threads: frozenset[int]) -> None:
        self.resumed.append(("only", sorted(threads)))


@pytest.mark.parametrize("packet, resumed", [
    (b"vCont;c:2", ("only", [2])),  # gdb stepping thread 2 over a breakpoint
    (b"vCont;c:p1.2", ("only", [2])),  # multiprocess thread ids
    (b"vCont;C05:3", ("only", [3])),  # a signal does not change whom it resumes
    (b"vCont;c:1;c:3", ("only", [1, 3])),
    (b"vCont;c:2;c", ("all", None)),
    (b"vCont;c", ("all", None)),
    (b"vCont;s:2;c", ("step", 2)),  # thread 2 steps alone: the others run 0 insns
    (b"vCont;s", ("step", 1)),  # every thread steps: the current one's is reported
])
def test_vcont_resumes_the_threads_its_actions_name(packet, resumed):
    target = ThreeThreads()
    sent: list[bytes] = []
    session = GdbSession(target, sent.append)
    session.feed(b"$" + packet + b"#%02x" % (sum(packet) & 0xFF))
    assert sent == [b"+"]  # no reply until the stop
    assert target.resumed == [resumed]
    assert session.running


@pytest.mark.parametrize("packet", [b"vCont;c:9", b"vCont;x", b"vCont;t:1"])
def test_vcont_that_resumes_nothing_or_is_unknown_is_an_error(packet):
    target = ThreeThreads()
    sent: list[bytes] = []
    session = GdbSession(target, sent.append)
    session.feed(b"$" + packet + b"#%02x" % (sum(packet) & 0xFF))
    assert target.resumed == [] and not session.running
    assert sent[-1].startswith(b"$E")
