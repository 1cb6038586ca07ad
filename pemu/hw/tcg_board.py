"""Power and the run loop that every TCG board shares (RISC-V's and Arm's virt), and
what their configuration checks share (``BoardError``, ``-accel tcg,tb-size``).

A board mixes ``TCGBoardRun`` in, calls ``init_run_state()`` once its ``machine``
(pemu/accel/tcg/machine.py) exists, and provides ``cfg``, ``reset()`` and
``first_cpu_pc()``.  The guest powers off, resets or is stopped from the monitor
through the methods below; ``run`` turns all of it into the process's exit status.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable

from pemu import threads
from pemu.accel.tcg.system_cpu import DEFAULT_TB_SIZE_MIB

MAX_TB_SIZE_MIB = 4096


class BoardError(Exception):
    """A configuration that cannot make a machine; the message is for the user."""


def tb_size_mib(accel: dict[str, str]) -> int:
    """``-accel tcg,tb-size=N``: the translation cache in MiB, as QEMU spells it."""
    text = accel.get("tb-size")
    if text is None:
        return DEFAULT_TB_SIZE_MIB
    try:
        size = int(text, 0)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_TB_SIZE_MIB:
        raise BoardError(f"-accel tcg,tb-size={text}: the translation cache size is "
                         f"a number of MiB from 1 to {MAX_TB_SIZE_MIB}")
    return size


class TCGBoardRun:
    prog = "pemu-system"  # the name that prefixes an internal error's message
    machine: object  # accel/tcg/machine.Machine
    cfg: object  # qemuopts/config.SystemConfig

    def init_run_state(self) -> None:
        self.exit_status: int | None = None
        self.exit_reason = ""
        self.error: str | None = None
        self._reset_requested = False
        self.run_seconds = 0.0
        # -no-shutdown: called (on the vCPU's thread) instead of exiting at power-off
        self.on_poweroff_stay: Callable[[int], None] | None = None

    def reset(self) -> None:
        raise NotImplementedError

    def first_cpu_pc(self) -> int:
        """Where the first vCPU is (for an internal error's message)."""
        raise NotImplementedError

    # -- power ------------------------------------------------------------------------------
    def request_exit(self, status: int, why: str = "") -> None:
        if self.exit_status is None:
            self.exit_status = status
            self.exit_reason = why
        self.machine.stop()  # type: ignore[attr-defined]

    def request_reset(self) -> None:
        if self.cfg.no_reboot:  # type: ignore[attr-defined]
            self.request_exit(0, "guest reset with -no-reboot")
            return
        self._reset_requested = True
        self.machine.stop()  # type: ignore[attr-defined]

    def guest_shutdown(self, code: int) -> None:
        if self.cfg.no_shutdown and self.on_poweroff_stay is not None:  # type: ignore
            self.on_poweroff_stay(code)  # -no-shutdown: the monitor stops the machine
            return
        self.request_exit(code, f"guest powered off (status {code})")

    # -- the run loop -----------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> int:
        """Run the guest; returns the exit status."""
        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, self.request_exit, (124, "timeout"))
            timer.daemon = True
            threads.start(timer)
        start = time.monotonic()
        try:
            while True:
                try:
                    self.machine.run_harts()  # type: ignore[attr-defined]
                except Exception as e:  # noqa: BLE001 - an emulator bug: report, exit 1
                    self.error = f"internal error near guest pc 0x{self.first_cpu_pc():x}: " \
                                 f"{type(e).__name__}: {e}"
                    log_items = self.cfg.log_items  # type: ignore[attr-defined]
                    if "exec" in log_items or "int" in log_items:
                        traceback.print_exc()
                    self.exit_status = 1
                    break
                if self._reset_requested and self.exit_status is None:
                    self._reset_requested = False
                    self.machine.stopping = False  # type: ignore[attr-defined]
                    self.reset()
                    continue
                break
        finally:
            if timer is not None:
                timer.cancel()
            self.run_seconds = time.monotonic() - start
        if self.error:
            print(f"{self.prog}: {self.error}", file=sys.stderr)
        return self.exit_status if self.exit_status is not None else 0
