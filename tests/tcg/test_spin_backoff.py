"""mttcg.SpinBackoff: when a vCPU resuming from WFI pauses first (a guest polling memory
with WFI in its loop while an interrupt it has masked stays pending)."""

from __future__ import annotations

from pemu.accel.tcg.mttcg import FIRST_BACKOFF_S, MAX_BACKOFF_S, SpinBackoff

SPIN = (0x80009B04, 0x8)  # OpenSBI 1.1's HSM wait, MSIP pending, mstatus.MIE clear


def test_the_first_resume_and_one_that_takes_an_interrupt_do_not_pause():
    b = SpinBackoff()
    assert b.pause_before_resuming(SPIN) == 0.0
    assert b.pause_before_resuming(None) == 0.0  # an interrupt is taken: no spin
    assert b.pause_before_resuming(SPIN) == 0.0  # starts over


def test_repeated_resumes_for_the_same_masked_interrupt_pause_longer_up_to_a_cap():
    b = SpinBackoff()
    pauses = [b.pause_before_resuming(SPIN) for _ in range(12)]
    assert pauses[0] == 0.0 and pauses[1] == FIRST_BACKOFF_S
    assert all(later == min(MAX_BACKOFF_S, 2 * earlier)
               for earlier, later in zip(pauses[1:], pauses[2:], strict=False))
    assert pauses[-1] == MAX_BACKOFF_S


def test_another_pc_or_other_pending_interrupts_start_over():
    b = SpinBackoff()
    for _ in range(5):
        b.pause_before_resuming(SPIN)
    assert b.pause_before_resuming((SPIN[0] + 4, SPIN[1])) == 0.0
    assert b.pause_before_resuming((SPIN[0] + 4, SPIN[1])) == FIRST_BACKOFF_S
    assert b.pause_before_resuming((SPIN[0] + 4, 0x28)) == 0.0
