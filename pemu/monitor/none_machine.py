"""The monitor's view of the ``none`` machine (pemu/hw/none_machine.py): run states
and events as on any board, nothing to pause, reset or read."""

from __future__ import annotations

import threading

from pemu.monitor.machine import MonitoredMachine


class NoneMachine(MonitoredMachine):
    machine_type = "none"

    def __init__(self, cfg, target: str, accel: str) -> None:
        super().__init__(name=cfg.name, start_stopped=cfg.start_stopped)
        self.target = target
        self.accel = accel
        self.cfg = cfg
        self._exit = threading.Event()

    # no vCPU to stop or start: the run state alone changes, as in QEMU
    def _pause(self) -> None:
        pass

    def _resume(self) -> None:
        pass

    def _reset(self) -> None:
        pass

    def _powerdown(self) -> None:
        """No power button: the request only makes the event (QEMU's none does so)."""

    def _quit(self) -> None:
        self._exit.set()

    def request_exit(self) -> None:
        """A signal: end ``run``."""
        self._exit.set()

    def run(self, timeout: float | None = None) -> int:
        """Serve the monitors until quit or a signal; the exit status (0)."""
        self._exit.wait(timeout)
        return 0
