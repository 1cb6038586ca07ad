"""The vCPU class the engine hands out when the native backend is selected."""

from __future__ import annotations

from pemu.accel.tcg.engine import TCGCPU


class NativeTCGCPU(TCGCPU):
    """A TCGCPU whose fast loop lives in native code (see runtime.NativeBackend.run).

    Debug execution (-d exec/cpu, breakpoints) and single steps keep the engine's
    Python loops: each native block object is callable and runs just that block.
    """

    def run(self) -> None:
        engine = self.engine
        if engine.log.wants_exec or engine.breakpoints:
            self._run_debug()
            return
        engine.backend.run(self)
