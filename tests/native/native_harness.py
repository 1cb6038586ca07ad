"""Running IR blocks and guests on the native backend, for the tests in this directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.backend.x86_64.runtime import NativeBackend
from pemu.accel.tcg.log import TCGLog
from pemu.linux_user.vmem import PROT_READ, PROT_WRITE, GuestVirtualMemory
from pemu.target.riscv.cpu_state import LAYOUT, RiscvCPUState

ROOT = Path(__file__).resolve().parents[2]

needs_native = pytest.mark.skipif(not host_supported(),
                                  reason="the native backend needs an x86-64 Linux host")


class BlockRunner:
    """A native backend with a small guest memory, running one IR block at a time."""

    def __init__(self, mem_size: int = 0x2000, code_size: int = 1 << 20,
                 pc_slot: int = 8) -> None:
        self.mem = GuestVirtualMemory(size=1 << 24)
        self.mem.map_anonymous(0, mem_size, PROT_READ | PROT_WRITE)
        self.engine = SimpleNamespace(mem=self.mem, log=TCGLog(), flush=lambda: None)
        layout = dataclasses.replace(LAYOUT, pc=pc_slot)
        self.backend = NativeBackend(self.engine, layout, code_size=code_size)
        self.cpu = _Cpu()

    def run(self, block: object, slots: list[int]) -> tuple[int, list[int]]:
        """Run ``block`` with the state's first slots set to ``slots``; returns the next
        pc and the whole state."""
        S = self.cpu.state.slots
        for i, v in enumerate(slots):
            S[i] = v
        tb = self.backend.compile(block).fn
        pc = tb(S, self.cpu)
        return pc, list(S)


class _Cpu:
    """What the backend needs of a vCPU: its state block (and weak-referenceable)."""

    def __init__(self) -> None:
        self.state = RiscvCPUState()

    def request_exit(self) -> None:
        self.state.slots[69] = 1
