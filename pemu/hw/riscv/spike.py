"""The ``spike`` board as QEMU has it: DRAM at 0x8000_0000, a CLINT, and HTIF.

The program (``-bios`` ELF, or ``-kernel`` ELF with ``-bios none``) must define the
``tohost`` symbol (``fromhost`` is optional); pemu watches stores to that page and
runs HTIF commands (see htif.py).  The hart starts at the ELF entry in M-mode with
a0 = hartid and a1 = the DTB address, which is 0 here: spike programs do not read it.
"""

from __future__ import annotations

from pemu.hw.riscv import boot
from pemu.hw.riscv.board import BoardError, RiscvBoard
from pemu.hw.riscv.htif import HTIF
from pemu.hw.riscv.memmap import SPIKE_MEMMAP
from pemu.hw.riscv.virt import check_machine_options, read_file
from pemu.qemuopts.config import SystemConfig
from pemu.qom.registry import MACHINE, TypeInfo, register

SPIKE_MACHINE = register(TypeInfo("spike", MACHINE, "RISC-V Spike board (HTIF)",
                                  arch="riscv64"))


class SpikeBoard(RiscvBoard):
    name = "spike"
    MEMMAP = SPIKE_MEMMAP

    def __init__(self, cfg: SystemConfig, chardevs=None, log=None) -> None:
        check_machine_options(SPIKE_MACHINE, cfg.machine)
        super().__init__(cfg, log)
        path = cfg.bios if cfg.bios not in (None, "none") else cfg.kernel
        if not path:
            raise BoardError("-M spike needs an ELF program (-bios FILE, or -bios none "
                             "-kernel FILE)")
        if cfg.bios not in (None, "none") and cfg.kernel:
            raise BoardError("-M spike: give the program as -bios or as -kernel, not both")
        self.image = read_file(path, "program", cfg.ram_size)
        if not boot.is_elf(self.image):
            raise BoardError(f"'{path}': spike runs ELF programs only")
        self.chardevs = chardevs
        self.output = None
        if chardevs is not None:
            spec = cfg.first_serial()
            self.output = chardevs.from_legacy(spec, "htif")
        self.htif: HTIF | None = None

    def load(self) -> None:
        dram = self.memmap["dram"]
        image = boot.load_elf(self.image, "program", self.space.write, dram.base, dram.size)
        tohost = image.symbols.get("tohost")
        if tohost is None:
            raise BoardError("spike: the program has no 'tohost' symbol (HTIF needs it)")
        self.htif = HTIF(self.space, tohost, image.symbols.get("fromhost"),
                         self.guest_shutdown, self.output)
        watched = {tohost >> 12: self.htif.watch}
        for hart in self.harts:
            hart.mmu.watched.clear()
            hart.mmu.watched.update(watched)
        self.reset_pc = image.entry

    def reset(self) -> None:
        super().reset()
        for hart in self.harts:
            hart.state.set_x(10, hart.hartid)  # a0 = hartid, a1 = 0 (no DTB)
