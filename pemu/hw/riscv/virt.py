"""The RISC-V ``virt`` board with QEMU's memory map (``VIRT_MEMMAP`` in memmap.py).

Its devices: the boot ROM (reset vector + fw_dynamic_info), the SiFive test finisher
(poweroff/reboot), a goldfish RTC, the CLINT (ACLINT MSWI + MTIMER, mtime at 10 MHz),
the interrupt controller for wired sources, a 16550A UART, 8 virtio-mmio slots
(slot n on wired source n + 1; the first device goes to the highest slot, as on QEMU),
the generic ECAM PCIe host bridge with its PIO and MMIO windows (INTx on wired sources
32..35, MSIs to the IMSIC with ``aia=aplic-imsic``; ``-device virtio-blk-pci`` & co.
plug into its root bus ``pcie.0``) and DRAM (-m).  Each is created at its table
entry, and virt_fdt.py describes it from the same entry.

The wired-interrupt controller is chosen with ``-M virt,aia=``: ``none`` (default), the
PLIC (96 sources, contexts M and S per hart); ``aplic``, an APLIC with an M-level root
domain and an S-level child in direct delivery mode (an IDC per hart drives MEIP/SEIP);
``aplic-imsic``, the same APLIC in MSI mode plus an IMSIC per hart with M and S files,
and the harts get the Smaia/Ssaia CSRs.  Devices never name the controller: they take
``wired_irq(n)``, and MSI-capable devices write to the IMSIC pages through the address
space (``has_msi``).

Boot (QEMU's placement): firmware at DRAM, the kernel at DRAM + 2 MiB when firmware
runs (at DRAM with ``-bios none``, started in M-mode), the initrd at kernel +
min(RAM/2, 128 MiB), the DTB in the last 2 MiB-aligned slot below the end of RAM.
"""

from __future__ import annotations

import os

from pemu.fdt.header import FdtHeaderError, check_fdt_blob
from pemu.hw.char.serial16550 import Serial16550
from pemu.hw.core import IRQLine
from pemu.hw.image_file import ImageFileError, read_image
from pemu.hw.intc.aplic import AplicDomain, msi_addr_config
from pemu.hw.intc.imsic import MAX_AIA_GUESTS, ImsicFile, ImsicPages, hart_pages
from pemu.hw.intc.plic import PLIC, plic_region_size
from pemu.hw.misc.sifive_test import SiFiveTest
from pemu.hw.riscv import boot
from pemu.hw.riscv.board import BoardError, RiscvBoard
from pemu.hw.riscv.memmap import VIRT_MEMMAP, MemoryMap, pcie_high_above
from pemu.hw.riscv.virt_fdt import VirtLayout, build_virt_fdt
from pemu.hw.rtc.goldfish_rtc import GoldfishRTC
from pemu.hw.virt_buses import VirtBuses
from pemu.memory.address_space import GuestMemoryError
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
from pemu.target.riscv.aia_csrs import AiaHartState
from pemu.target.riscv.hyp import guest_file_sink
from pemu.target.riscv.insn_cbo import CBO_BLOCK_SIZE
from pemu.target.riscv.priv import MIP_MEIP, MIP_SEIP

KERNEL_OFFSET = 0x20_0000
FDT_ALIGN = 0x20_0000
FDT_MAX = 0x10_0000
IMSIC_PAGE = 0x1000
AIA_ENTRIES = ("aplic_m", "aplic_s", "imsic_m", "imsic_s")
DEFAULT_BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin"
VIRT_MACHINE = register(TypeInfo(
    "virt", MACHINE, "RISC-V VirtIO board", arch="riscv64", is_default=True,
    properties=(
        Property("dumpdtb", "str", description="write the device tree to a file and exit"),
        Property("aclint", "bool", "off", "ACLINT devices (MTIMER/MSWI/SSWI)",
                 choices=("off",)),
        Property("aia", "str", "none", "interrupt controller: none (PLIC), aplic (APLIC, "
                 "direct delivery) or aplic-imsic (APLIC forwarding MSIs to per-hart "
                 "IMSICs)", choices=("none", "aplic", "aplic-imsic")),
        Property("acpi", "OnOffAuto", "auto", "ACPI tables (pemu builds none)",
                 choices=("off", "auto")),
        Property("aia-guests", "uint32", "0", "IMSIC guest interrupt files per hart for "
                 "VS guests (aia=aplic-imsic, -cpu with h=true)",
                 choices=tuple(str(n) for n in range(MAX_AIA_GUESTS + 1))),
    )))


def aia_guests(cfg: SystemConfig) -> int:
    return int(cfg.machine.get("aia-guests", "0"))


def check_machine_options(info: TypeInfo, opts: dict[str, str]) -> None:
    """-M NAME,prop=value...: every property declared, every value implemented."""
    try:
        check_options(info, opts)
    except RegistryError as e:
        raise BoardError(f"-M {info.name}: {e}") from None


def read_file(path: str, what: str, limit: int) -> bytes:
    """A regular file of at most ``limit`` bytes (the RAM it must fit in)."""
    try:
        return read_image(path, limit)
    except ImageFileError as e:
        raise BoardError(f"could not load {what} '{path}': {e}") from None


class VirtBoard(VirtBuses, RiscvBoard):
    name = "virt"
    MEMMAP = VIRT_MEMMAP

    def machine_memmap(self, cfg: SystemConfig) -> MemoryMap:
        aia = cfg.machine.get("aia", "none")
        if aia == "none":
            # the PLIC maps the contexts of the harts present: M and S per hart
            return pcie_high_above(self.MEMMAP.without(*AIA_ENTRIES).sized(
                dram=cfg.ram_size, plic=plic_region_size(2 * cfg.smp)))
        mm = self.MEMMAP.without("plic")
        if aia == "aplic":
            return pcie_high_above(mm.without("imsic_m", "imsic_s").sized(dram=cfg.ram_size))
        pages = IMSIC_PAGE * cfg.smp
        s_pages = pages * hart_pages(1 + aia_guests(cfg))
        return pcie_high_above(mm.sized(dram=cfg.ram_size, imsic_m=pages, imsic_s=s_pages))

    def __init__(self, cfg: SystemConfig, chardevs=None, log=None) -> None:
        check_machine_options(VIRT_MACHINE, cfg.machine)
        super().__init__(cfg, log)
        self.chardevs = chardevs
        mm = self.memmap
        self.rom = self.space.add_ram("mrom", mm["mrom"].base, mm["mrom"].size,
                                      read_only=True)
        self.aia = cfg.machine.get("aia", "none")
        self.plic: PLIC | None = None
        self.aplic_m: AplicDomain | None = None
        self.aplic_s: AplicDomain | None = None
        self.imsics: list[ImsicPages] = []
        if self.aia == "none":
            self._add_plic()
        else:
            self._add_aia()
        self._add_devices()
        self.add_virtio_slots()
        self.add_pcie_host()
        self._images: dict[str, bytes] = {}
        self._read_images()

    # -- interrupt controllers ---------------------------------------------------------
    def _add_plic(self) -> None:
        mm = self.memmap
        self.plic = plic = PLIC(self.cfg.smp)
        assert plic.region_size == mm["plic"].size, "machine_memmap sizes the PLIC"
        self.space.add_mmio("plic", mm["plic"].base, mm["plic"].size, plic)
        for h, hart in enumerate(self.harts):
            plic.m_external(h).connect(hart.ps.line_sink(MIP_MEIP))
            plic.s_external(h).connect(hart.ps.line_sink(MIP_SEIP))

    def _add_aia(self) -> None:
        mm, smp = self.memmap, self.cfg.smp
        msi = self.has_msi
        msi_config = (0, 0, 0, 0)
        if msi:
            guests = aia_guests(self.cfg)
            files = {}
            for level, bit in (("m", MIP_MEIP), ("s", MIP_SEIP)):
                per_hart = 1 + guests if level == "s" else 1
                files[level] = [ImsicFile(name=f"imsic-{level}{h}" + (f"g{g}" if g else ""))
                                for h in range(smp) for g in range(per_hart)]
                pages = ImsicPages(files[level], id=f"imsic-{level}",
                                   machine_level=level == "m", files_per_hart=per_hart)
                entry = mm[f"imsic_{level}"]
                self.space.add_mmio(f"imsic_{level}", entry.base, entry.size, pages)
                self.imsics.append(pages)
                for hart, f in zip(self.harts, files[level][::per_hart], strict=True):
                    f.output.connect(hart.ps.line_sink(bit))
            for h, hart in enumerate(self.harts):
                first = h * (1 + guests)
                hart.aia = AiaHartState(files["m"][h], files["s"][first],
                                        guest_files=files["s"][first + 1:first + 1 + guests])
                if guests and hart.ps.has_h:  # without H the pages exist, nothing reads them
                    hart.ps.hyp.geilen = guests
                    for g, f in enumerate(hart.aia.guest_files, start=1):
                        f.output.connect(guest_file_sink(hart.ps, g))
            for pages in self.imsics:  # the [ms]iselect registers migrate with the files
                pages.hart_selects = [hart.aia for hart in self.harts]
            # Reset values that already point at the IMSIC pages: firmware that programs
            # the registers (OpenSBI) overwrites them with the same, and firmware that
            # does not still gets working MSIs.
            s_stride = (IMSIC_PAGE * hart_pages(1 + guests)).bit_length() - 1
            s_low, s_high = msi_addr_config(mm["imsic_s"].base, s_stride, smp)
            msi_config = (*msi_addr_config(mm["imsic_m"].base, 12, smp),
                          s_low, s_high & 0x0070_0FFF)
        self.aplic_m = AplicDomain(smp, machine_level=True, msi_mode=msi,
                                   msi_config=msi_config, id="aplic-m")
        self.aplic_s = AplicDomain(smp, machine_level=False, msi_mode=msi,
                                   parent=self.aplic_m, id="aplic-s")
        for name, domain in (("aplic_m", self.aplic_m), ("aplic_s", self.aplic_s)):
            self.space.add_mmio(name, mm[name].base, mm[name].size, domain)
        if msi:
            self.aplic_m.msi_write = self._msi_write
        else:
            for h, hart in enumerate(self.harts):
                self.aplic_m.outputs[h].connect(hart.ps.line_sink(MIP_MEIP))
                self.aplic_s.outputs[h].connect(hart.ps.line_sink(MIP_SEIP))

    def _msi_write(self, address: int, data: int) -> None:
        """An MSI: a 32-bit write on the bus, as the device's bus master would do."""
        try:
            self.space.store(address, 4, data)
        except GuestMemoryError:
            pass  # an MSI to an unbacked address is lost, as on a real bus

    @property
    def has_msi(self) -> bool:
        """Whether MSIs have somewhere to go (IMSICs): MSI/MSI-X devices need it."""
        return self.aia == "aplic-imsic"

    def wired_irq(self, source: int) -> IRQLine:
        """Wired interrupt source ``source`` (1..95 with the PLIC, 1..96 with the APLIC)
        of whichever controller this machine has; the device tree names the same
        source through ``virt_fdt.InterruptParents.wired_cells``."""
        if self.plic is not None:
            return self.plic.input(source)
        assert self.aplic_m is not None
        return self.aplic_m.input(source)

    def reset(self) -> None:
        self.pci.reset()  # BARs unmapped, MSI/MSI-X off: firmware and kernel start over
        for domain in (self.aplic_m, self.aplic_s):
            if domain is not None:
                domain.reset()
        for pages in self.imsics:
            pages.reset()
        for hart in self.harts:
            if getattr(hart, "aia", None) is not None:
                hart.aia.reset()
        super().reset()

    # -- devices -----------------------------------------------------------------------
    def _add_devices(self) -> None:
        mm = self.memmap
        self.test = SiFiveTest(self.guest_shutdown, self.request_reset)
        self.space.add_mmio("test", mm["test"].base, mm["test"].size, self.test)
        self.rtc = GoldfishRTC(self.wired_irq(mm["rtc"].irq))
        self.space.add_mmio("rtc", mm["rtc"].base, mm["rtc"].size, self.rtc)
        chardev = None
        if self.chardevs is not None:
            spec = self.cfg.first_serial("mon:stdio" if self.cfg.nographic else "stdio")
            try:
                chardev = self.chardevs.from_legacy(spec, "serial0")
            except OptionError as e:
                raise BoardError(f"-serial {spec}: {e}") from None
        self.uart = Serial16550(chardev, self.wired_irq(mm["uart0"].irq))
        self.space.add_mmio("uart", mm["uart0"].base, mm["uart0"].size, self.uart)

    # -- machine state -----------------------------------------------------------------
    def board_devices(self) -> list:
        # the interrupt controller where the PLIC always was; with AIA the IMSIC files
        # load before the APLIC, whose post-load may forward MSIs into them
        controllers = [self.plic] if self.plic is not None else [
            *self.imsics, self.aplic_m, self.aplic_s]
        return [*super().board_devices(), *controllers, self.rtc, self.uart, self.test,
                *self.bus_devices()]

    def migration_blockers(self) -> list[str]:
        return self.bus_migration_blockers()

    def migration_pre_save(self) -> None:
        self.drain_bus_devices()

    def migration_post_load(self) -> None:
        super().migration_post_load()
        self.reset_vsock_streams()

    # -- images ------------------------------------------------------------------------
    def _read_images(self) -> None:
        cfg = self.cfg
        bios = cfg.bios if cfg.bios is not None else DEFAULT_BIOS
        if bios != "none":
            if cfg.bios is None and not os.path.exists(bios):
                raise BoardError(f"no -bios given and the default firmware {bios} is "
                                 "missing (install Debian's opensbi, or use -bios none)")
            self._images["bios"] = read_file(bios, "bios", cfg.ram_size)
        if cfg.kernel:
            self._images["kernel"] = read_file(cfg.kernel, "kernel", cfg.ram_size)
            data = self._images["kernel"]
            if not (boot.is_elf(data) or boot.is_linux_image(data)):
                raise BoardError(f"kernel '{cfg.kernel}': not a RISC-V Linux Image or an "
                                 "ELF file")
        elif "bios" not in self._images:
            raise BoardError("-bios none needs a -kernel to run")
        if cfg.initrd:
            if not cfg.kernel:
                raise BoardError("-initrd needs a -kernel")
            self._images["initrd"] = read_file(cfg.initrd, "initrd", cfg.ram_size)
        if cfg.dtb:
            dtb = read_file(cfg.dtb, "dtb", FDT_MAX)
            try:
                self._images["dtb"] = dtb[:check_fdt_blob(dtb)]
            except FdtHeaderError as e:
                raise BoardError(f"load_device_tree: Unable to copy device tree into "
                                 f"memory: {e} ('{cfg.dtb}')") from None

    def layout(self, initrd: tuple[int, int] | None) -> VirtLayout:
        plic_sources = self.plic.num_sources if self.plic is not None else 0
        return VirtLayout(num_harts=self.cfg.smp, memmap=self.memmap,
                          plic_sources=plic_sources, bootargs=self.cfg.append,
                          initrd=initrd, isa=self.isa.isa_string, aia=self.aia,
                          aia_guests=aia_guests(self.cfg),
                          isa_extensions=self.isa.isa_extensions, mmu_type=self.isa.mmu_type,
                          cbom_block_size=CBO_BLOCK_SIZE if self.isa.has("zicbom") else 0,
                          cboz_block_size=CBO_BLOCK_SIZE if self.isa.has("zicboz") else 0)

    def load(self) -> None:
        dram = self.memmap["dram"]
        ram_base, ram_size = dram.base, dram.size
        write = self.space.write
        ram_end = ram_base + ram_size
        images = self._images
        entry = ram_base
        fw = None
        if "bios" in images:
            fw = boot.load_firmware(images["bios"], ram_base, write, ram_base, ram_size)
            entry = fw.entry
        kernel_entry = 0
        initrd_range = None
        if "kernel" in images:
            addr = ram_base + KERNEL_OFFSET if fw is not None else ram_base
            if fw is not None:
                addr = max(addr, (fw.high + KERNEL_OFFSET - 1) & ~(KERNEL_OFFSET - 1))
            k = boot.load_kernel(images["kernel"], addr, write, ram_base, ram_size)
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
        rom = self.memmap["mrom"].base
        write(rom, boot.reset_vector(entry, fdt_addr, kernel_entry, next_mode))
        self.reset_pc = rom

    def dump_dtb(self, path: str) -> None:
        initrd = None
        if "initrd" in self._images:
            k_entry = self.memmap["dram"].base + (KERNEL_OFFSET if "bios" in self._images else 0)
            start = k_entry + min(self.cfg.ram_size // 2, 128 << 20)
            initrd = (start, start + len(self._images["initrd"]))
        dtb = build_virt_fdt(self.layout(initrd))
        try:
            with open(path, "wb") as f:
                f.write(dtb)
        except OSError as e:
            raise BoardError(f"dumpdtb: cannot write '{path}': {e.strerror}") from None
