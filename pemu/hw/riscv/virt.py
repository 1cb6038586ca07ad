"""The RISC-V ``virt`` board with QEMU's memory map.

  0x0000_1000  boot ROM (0xf000): reset vector + fw_dynamic_info
  0x0010_0000  SiFive test finisher (poweroff/reboot)
  0x0010_1000  goldfish RTC, PLIC source 11
  0x0200_0000  CLINT (ACLINT MSWI + MTIMER, mtime at 10 MHz)
  0x0c00_0000  PLIC, 96 sources, contexts M and S per hart
  0x1000_0000  16550A UART, PLIC source 10
  0x1000_1000  8 virtio-mmio slots of 0x1000, slot n on PLIC source n; the first
               device goes to the highest slot, as on QEMU
  0x8000_0000  DRAM (-m)

Boot (QEMU's placement): firmware at DRAM, the kernel at DRAM + 2 MiB when firmware
runs (at DRAM with ``-bios none``, started in M-mode), the initrd at kernel +
min(RAM/2, 128 MiB), the DTB in the last 2 MiB-aligned slot below the end of RAM.
"""

from __future__ import annotations

import os

from pemu.hw.intc.plic import PLIC
from pemu.hw.riscv import boot
from pemu.hw.riscv.board import DRAM_BASE, BoardError, RiscvBoard
from pemu.hw.riscv.virt_fdt import VirtLayout, build_virt_fdt
from pemu.qemuopts.config import SystemConfig
from pemu.qemuopts.keyval import OptionError
from pemu.qom.registry import (
    MACHINE,
    Property,
    RegistryError,
    TypeInfo,
    check_options,
    register,
)
from pemu.target.riscv.priv import MIP_MEIP, MIP_SEIP

ROM_BASE, ROM_SIZE = 0x1000, 0xF000
TEST_BASE, TEST_SIZE = 0x10_0000, 0x1000
RTC_BASE, RTC_SIZE, RTC_IRQ = 0x10_1000, 0x1000, 11
PLIC_BASE = 0x0C00_0000
UART_BASE, UART_SIZE, UART_IRQ = 0x1000_0000, 0x100, 10
VIRTIO_BASE, VIRTIO_SIZE, VIRTIO_SLOTS = 0x1000_1000, 0x1000, 8
KERNEL_OFFSET = 0x20_0000
FDT_ALIGN = 0x20_0000
FDT_MAX = 0x10_0000
DEFAULT_BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
VIRT_MACHINE = register(TypeInfo(
    "virt", MACHINE, "RISC-V VirtIO board", arch="riscv64", is_default=True,
    properties=(
        Property("dumpdtb", "str", description="write the device tree to a file and exit"),
        Property("aclint", "bool", "off", "ACLINT devices (MTIMER/MSWI/SSWI)",
                 choices=("off",)),
        Property("aia", "str", "none", "interrupt controller: none (PLIC); APLIC and "
                 "IMSIC are not emulated yet", choices=("none",)),
        Property("acpi", "OnOffAuto", "auto", "ACPI tables (pemu builds none)",
                 choices=("off", "auto")),
    )))


def check_machine_options(info: TypeInfo, opts: dict[str, str]) -> None:
    """-M NAME,prop=value...: every property declared, every value implemented."""
    try:
        check_options(info, opts)
    except RegistryError as e:
        raise BoardError(f"-M {info.name}: {e}") from None


def read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise BoardError(f"could not load {what} '{path}': {e.strerror}") from None


class VirtBoard(RiscvBoard):
    name = "virt"

    def __init__(self, cfg: SystemConfig, chardevs=None, log=None) -> None:
        check_machine_options(VIRT_MACHINE, cfg.machine)
        super().__init__(cfg, log)
        self.chardevs = chardevs
        self.rom = self.space.add_ram("mrom", ROM_BASE, ROM_SIZE, read_only=True)
        self.plic = PLIC(cfg.smp)
        self.space.add_mmio("plic", PLIC_BASE, self.plic.region_size, self.plic)
        for h, hart in enumerate(self.harts):
            self.plic.m_external(h).connect(hart.ps.line_sink(MIP_MEIP))
            self.plic.s_external(h).connect(hart.ps.line_sink(MIP_SEIP))
        self._add_devices()
        self.virtio_slots: list = []
        self._virtio_used = 0
        self._add_virtio_slots()
        self._images: dict[str, bytes] = {}
        self._read_images()

    # -- devices -----------------------------------------------------------------------
    def _add_devices(self) -> None:
        from pemu.hw.char.serial16550 import Serial16550
        from pemu.hw.misc.sifive_test import SiFiveTest
        from pemu.hw.rtc.goldfish_rtc import GoldfishRTC

        self.test = SiFiveTest(self.guest_shutdown, self.request_reset)
        self.space.add_mmio("test", TEST_BASE, TEST_SIZE, self.test)
        self.rtc = GoldfishRTC(self.plic.input(RTC_IRQ))
        self.space.add_mmio("rtc", RTC_BASE, RTC_SIZE, self.rtc)
        chardev = None
        if self.chardevs is not None:
            if self.cfg.serial:
                spec = self.cfg.serial[0]
            else:
                spec = "mon:stdio" if self.cfg.nographic else "stdio"
            try:
                chardev = self.chardevs.from_legacy(spec, "serial0")
            except OptionError as e:
                raise BoardError(f"-serial {spec}: {e}") from None
        self.uart = Serial16550(chardev, self.plic.input(UART_IRQ))
        self.space.add_mmio("uart", UART_BASE, UART_SIZE, self.uart)

    def _add_virtio_slots(self) -> None:
        from pemu.hw.virtio.mmio import VirtioMMIO

        for n in range(VIRTIO_SLOTS):
            base = VIRTIO_BASE + n * VIRTIO_SIZE
            transport = VirtioMMIO(self.space, None, self.plic.input(n + 1),
                                   id=f"virtio-mmio{n}")
            self.space.add_mmio(f"virtio-mmio{n}", base, VIRTIO_SIZE, transport)
            self.virtio_slots.append(transport)

    def add_virtio(self, device, name: str) -> None:
        """Plug a virtio device into the highest free slot."""
        from pemu.hw.virtio.mmio import VirtioMMIO

        slot = VIRTIO_SLOTS - 1 - self._virtio_used
        if slot < 0:
            raise BoardError(f"{name}: virt has only {VIRTIO_SLOTS} virtio-mmio slots")
        self._virtio_used += 1
        base = VIRTIO_BASE + slot * VIRTIO_SIZE
        # replace the empty transport of that slot by one carrying the device
        region = self.space.find(base, 4)
        transport = VirtioMMIO(self.space, device, self.plic.input(slot + 1), id=name)
        region.handler = transport  # type: ignore[union-attr]
        self.virtio_slots[slot] = transport

    # -- images ------------------------------------------------------------------------
    def _read_images(self) -> None:
        cfg = self.cfg
        bios = cfg.bios if cfg.bios is not None else DEFAULT_BIOS
        if bios != "none":
            if cfg.bios is None and not os.path.exists(bios):
                raise BoardError(f"no -bios given and the default firmware {bios} is "
                                 "missing (install Debian's opensbi, or use -bios none)")
            self._images["bios"] = read_file(bios, "bios")
        if cfg.kernel:
            self._images["kernel"] = read_file(cfg.kernel, "kernel")
            data = self._images["kernel"]
            if not (boot.is_elf(data) or boot.is_linux_image(data)):
                raise BoardError(f"kernel '{cfg.kernel}': not a RISC-V Linux Image or an "
                                 "ELF file")
        elif "bios" not in self._images:
            raise BoardError("-bios none needs a -kernel to run")
        if cfg.initrd:
            if not cfg.kernel:
                raise BoardError("-initrd needs a -kernel")
            self._images["initrd"] = read_file(cfg.initrd, "initrd")
        if cfg.dtb:
            self._images["dtb"] = read_file(cfg.dtb, "dtb")

    def layout(self, initrd: tuple[int, int] | None) -> VirtLayout:
        cfg = self.cfg
        virtio = [(VIRTIO_BASE + n * VIRTIO_SIZE, VIRTIO_SIZE, n + 1)
                  for n in reversed(range(VIRTIO_SLOTS))]
        return VirtLayout(
            num_harts=cfg.smp, ram_base=DRAM_BASE, ram_size=cfg.ram_size,
            clint=(0x0200_0000, 0x10000), plic=(PLIC_BASE, self.plic.region_size),
            plic_sources=self.plic.num_sources, uart=(UART_BASE, UART_SIZE),
            uart_irq=UART_IRQ, rtc=(RTC_BASE, RTC_SIZE), rtc_irq=RTC_IRQ,
            test=(TEST_BASE, TEST_SIZE), virtio=virtio, bootargs=cfg.append, initrd=initrd)

    def load(self) -> None:
        ram_size = self.cfg.ram_size
        write = self.space.write
        ram_end = DRAM_BASE + ram_size
        images = self._images
        entry = DRAM_BASE
        fw = None
        if "bios" in images:
            fw = boot.load_firmware(images["bios"], DRAM_BASE, write, DRAM_BASE, ram_size)
            entry = fw.entry
        kernel_entry = 0
        initrd_range = None
        if "kernel" in images:
            addr = DRAM_BASE + KERNEL_OFFSET if fw is not None else DRAM_BASE
            if fw is not None:
                addr = max(addr, (fw.high + KERNEL_OFFSET - 1) & ~(KERNEL_OFFSET - 1))
            k = boot.load_kernel(images["kernel"], addr, write, DRAM_BASE, ram_size)
            kernel_entry = k.entry
            if fw is None:
                entry = k.entry
            if "initrd" in images:
                data = images["initrd"]
                start = k.entry + min(ram_size // 2, 128 << 20)
                if start + len(data) > ram_end - FDT_ALIGN:
                    raise BoardError(f"initrd ({len(data)} bytes) does not fit in RAM at "
                                     f"0x{start:x} (use a larger -m)")
                write(start, data)
                initrd_range = (start, start + len(data))
        dtb = images.get("dtb") or build_virt_fdt(self.layout(initrd_range))
        if len(dtb) > FDT_MAX:
            raise BoardError(f"device tree is too large ({len(dtb)} bytes)")
        fdt_addr = (min(ram_end, 0x1_0000_0000) - len(dtb)) & ~(FDT_ALIGN - 1)
        write(fdt_addr, dtb)
        self.dtb = dtb
        next_mode = boot.NEXT_MODE_S
        write(ROM_BASE, boot.reset_vector(entry, fdt_addr, kernel_entry, next_mode))
        self.reset_pc = ROM_BASE

    def dump_dtb(self, path: str) -> None:
        initrd = None
        if "initrd" in self._images:
            k_entry = DRAM_BASE + (KERNEL_OFFSET if "bios" in self._images else 0)
            start = k_entry + min(self.cfg.ram_size // 2, 128 << 20)
            initrd = (start, start + len(self._images["initrd"]))
        dtb = build_virt_fdt(self.layout(initrd))
        try:
            with open(path, "wb") as f:
                f.write(dtb)
        except OSError as e:
            raise BoardError(f"dumpdtb: cannot write '{path}': {e.strerror}") from None
