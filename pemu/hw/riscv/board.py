"""What every RISC-V board under TCG shares: RAM, harts, the CLINT, running, exiting.

A board builds its address space and devices on top of this, loads its images in
``load`` and sets ``reset_pc``.  ``run`` executes the harts on the calling thread (so
SIGINT/SIGTERM handlers, which Python runs on the main thread, can stop them) until
the guest powers off, resets with ``-no-reboot``, or ``request_exit`` is called.
A guest reset without ``-no-reboot`` reloads the images and restarts the harts.
"""

from __future__ import annotations

import mmap
import sys
import threading

from pemu.accel.tcg.engine import resolve_backend
from pemu.accel.tcg.log import TCGLog
from pemu.accel.tcg.machine import Machine
from pemu.accel.tcg.mttcg import ParallelMachine, wants_parallel_vcpus
from pemu.accel.tcg.system_cpu import DEFAULT_BACKEND, SystemTranslator
from pemu.hw.intc.aclint import ACLINT
from pemu.hw.riscv.hart_vmstate import HartState
from pemu.hw.riscv.memmap import MemoryMap
from pemu.hw.tcg_board import BoardError, TCGBoardRun, tb_size_mib
from pemu.memory.address_space import AddressSpace
from pemu.memory.backends import open_ram_backing
from pemu.qemuopts.config import SystemConfig
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.hart import RiscvHart
from pemu.target.riscv.isa import CpuOptionError, parse_cpu
from pemu.target.riscv.priv import MIP_MSIP, MIP_MTIP
from pemu.target.riscv.tcg_target import riscv64_target

MAX_HARTS = 8




class RiscvBoard(TCGBoardRun):
    """``MEMMAP`` is the board's table (memmap.py); ``self.memmap`` is that table sized
    for this machine (``machine_memmap``), which devices and the device tree read."""

    prog = "pemu-system-riscv64"
    name = "riscv"
    MEMMAP: MemoryMap

    def machine_memmap(self, cfg: SystemConfig) -> MemoryMap:
        return self.MEMMAP.sized(dram=cfg.ram_size)

    def __init__(self, cfg: SystemConfig, log: TCGLog | None = None) -> None:
        self.cfg = cfg
        if not 1 <= cfg.smp <= MAX_HARTS:
            raise BoardError(f"-smp {cfg.smp}: this board supports 1 to {MAX_HARTS} harts")
        if cfg.ram_size < 16 << 20:
            raise BoardError(f"-m {cfg.ram_size >> 20}M: at least 16 MiB of RAM is needed")
        if cfg.ram_size > 0x8000_0000 * 8:
            raise BoardError(f"-m {cfg.ram_size >> 20}M: at most 16 GiB of RAM")
        try:
            self.isa = parse_cpu(cfg.cpu)  # -cpu MODEL,ext=on|off: what the harts decode
        except CpuOptionError as e:
            raise BoardError(str(e)) from None
        if self.isa.missing:  # a profile model pemu cannot complete (rva23s64: H and the rest)
            print(f"pemu: warning: -cpu {cfg.cpu}: the profile also requires "
                  f"{', '.join(self.isa.missing)}, which pemu does not implement",
                  file=sys.stderr)
        self.memmap = self.machine_memmap(cfg)
        dram, clint = self.memmap["dram"], self.memmap["clint"]
        self.space = AddressSpace("memory")
        try:
            self.dram = self.space.add_ram("ram", dram.base, dram.size)
            self.dram.backing = open_ram_backing(cfg, "ram")
            if self.dram.backing is not None and not cfg.incoming:
                self.dram.attach_backing()  # else when the incoming state arrives
            if not cfg.dump_guest_core:
                self.dram.mem.madvise(mmap.MADV_DONTDUMP)
        except (OSError, ValueError) as e:
            raise BoardError(f"-m: cannot allocate guest RAM: {e}") from None
        try:
            backend = cfg.accel.get("backend", DEFAULT_BACKEND)
            # MTTCG: a thread per hart (the default with several harts on native code)
            parallel = wants_parallel_vcpus(cfg.accel, cfg.smp, resolve_backend(backend))
            self.translator = SystemTranslator(
                self.space, self.dram, riscv64_target(self.isa), log,
                backend=backend,
                tb_size_mib=tb_size_mib(cfg.accel), parallel=parallel, vcpus=cfg.smp)
        except ValueError as e:
            raise BoardError(f"-accel tcg: {e}") from None
        self.clint = ACLINT(cfg.smp)
        self.space.add_mmio("clint", clint.base, clint.size, self.clint)
        self.wakeup = threading.Event()
        # MTTCG: each hart's thread sleeps on an event of its own
        self.harts = [RiscvHart(h, self.translator, self.space, self.clint.mtime,
                                threading.Event() if parallel else self.wakeup, self.isa)
                      for h in range(cfg.smp)]
        for h, hart in enumerate(self.harts):
            self.clint.msip[h].connect(hart.ps.line_sink(MIP_MSIP))
            self.clint.mtip[h].connect(hart.ps.line_sink(MIP_MTIP))
            hart.ps.timebase_hz = self.clint.timebase_hz
            self.clint.add_clock_listener(hart.ps.set_host_clock)
            if self.translator.log.enabled("int"):
                hart.ps.log_trap = self.translator.log.write
        self.hart_states = [HartState(h) for h in self.harts]
        if parallel:
            self.machine = ParallelMachine(self.harts, self.wakeup, self.clint.next_deadline,
                                           self.translator.bql)
        else:
            self.machine = Machine(self.harts, self.wakeup, self.clint.next_deadline)
        self.init_run_state()
        self.reset_pc = dram.base

    def first_cpu_pc(self) -> int:
        return self.harts[0].slots[rv.PC]

    # -- boot ---------------------------------------------------------------------------------
    def load(self) -> None:
        """Write firmware/kernel/ROM contents; subclasses set ``reset_pc``."""
        raise NotImplementedError

    def reset(self) -> None:
        self.translator.flush()
        self.clint.reset()
        self.load()
        for hart in self.harts:
            hart.reset(self.reset_pc)

    # -- machine state (pemu/migration/machine_state.MigratableMachine) -------------------
    def migration_description(self) -> str:
        blocks = ",".join(f"{b.name}:0x{b.size:x}" for b in self.ram_blocks())
        return f"riscv64 {self.name} harts={len(self.harts)} ram={blocks}"

    def vm_clock_ns(self) -> int:
        """The guest's clock (mtime) in ns: what a snapshot records as VM CLOCK."""
        return self.clint.mtime() * 1_000_000_000 // self.clint.timebase_hz

    def ram_blocks(self) -> list:
        return [r for r in self.space.regions() if hasattr(r, "view")]

    def board_devices(self) -> list:
        """The board's devices with state, in load order (subclasses extend it)."""
        return [self.clint]

    def migration_blockers(self) -> list[str]:
        """Devices whose state pemu cannot carry yet: savevm and migrate refuse while
        the machine has one (QEMU's migration blockers), instead of losing it."""
        return []

    def migratable_devices(self) -> list:
        # harts last: their post-load re-arms stimecmp against the loaded mtime
        return [*self.board_devices(), *self.hart_states]

    def migration_pre_save(self) -> None:
        """Nothing on a bare board; boards with block devices drain them."""

    def migration_post_load(self) -> None:
        self.translator.flush()  # translated code and page snapshots were of the old RAM
        for hart in self.harts:
            hart.tlb_flush_all()
            hart.ps.kick()
        self.wakeup.set()

    def close(self) -> None:
        """Nothing to release yet: devices and chardevs are closed by their owners."""
