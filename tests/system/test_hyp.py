"""The hypervisor extension (``-cpu rv64,h=true``).

programs/hyp.S runs a small VS guest under an HS hypervisor with two-stage tables and
prints every trap (ecall from VS, the guest's own page fault, guest-page faults with
htval, virtual instructions, VS software/timer interrupts through hvip) and the
hlv/hsv results: its output must be QEMU 7.2's, byte for byte, on both TCG backends.
The two-stage walk's corner cases where QEMU 7.2 departs from the spec (see hyp.S)
are checked here against the spec directly.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pemu.accel.tcg.softmmu import ACCESS_READ, ACCESS_WRITE, PERM_W
from pemu.target.riscv.exceptions import LOAD_PAGE_FAULT, RiscvTrap
from pemu.target.riscv.hyp import (
    LOAD_GUEST_PAGE_FAULT,
    STORE_GUEST_PAGE_FAULT,
    GuestTrap,
    HypState,
)
from pemu.target.riscv.isa import MAX_ISA, parse_cpu
from pemu.target.riscv.mmu import PRV_S, PRV_U
from pemu.target.riscv.mmu_hyp import TwoStage
from tests.system.conftest import OPENSBI, run_pemu

QEMU = "qemu-system-riscv64"
CPU = "rv64,h=true"


def _qemu_run(elf: str, log: str) -> tuple[bytes, str]:
    """QEMU's UART output and -d int log for the program."""
    r = subprocess.run([QEMU, "-M", "virt", "-bios", "none", "-cpu", CPU, "-nographic",
                        "-kernel", elf, "-d", "int", "-D", log],
                       capture_output=True, input=b"", timeout=60)
    assert r.returncode == 0, f"QEMU: {r.stdout.decode()[-2000:]}"
    return r.stdout, Path(log).read_text()


def test_hypervisor_program_matches_qemu(build_program, tcg_backend, tmp_path):
    elf = build_program("hyp")
    log = tmp_path / "pemu-int.log"
    r = run_pemu("-M", "virt", "-bios", "none", "-cpu", CPU, "-nographic",
                 "-kernel", str(elf), "-d", "int", "-D", str(log), timeout=120)
    out = r.stdout
    assert r.returncode == 0, out.decode()[-3000:] + r.stderr.decode()[-2000:]
    # the events that must be there whatever the oracle says
    assert b"misa.H 0000000000000001" in out
    assert b"HS trap scause 0000000000000015\n  tval 0000000040000010\n" \
           b"  htval 0000000030000004" in out  # hlv: load guest-page fault, GPA >> 2
    assert b"HS trap scause 0000000000000016" in out  # a virtual instruction
    assert b"guest ecall a0 8000000000000001" in out  # VSSIP seen by VS as SSI
    assert "desc=guest_store_page_fault" in log.read_text()
    if shutil.which(QEMU) is None:
        pytest.skip(f"needs {QEMU} (Debian qemu-system-misc) as the oracle")
    qemu_out, qemu_log = _qemu_run(str(elf), str(tmp_path / "qemu-int.log"))
    assert out == qemu_out
    assert log.read_text() == qemu_log  # every trap, as -d int logs it


def test_vu_mode_virtual_instructions(build_program):
    """VU-mode's S CSR access, sret and sfence.vma are virtual instructions (spec 8.6.1;
    QEMU 7.2 raises illegal instructions): hyp.S built with VU_SPEC, pemu alone."""
    r = run_pemu("-M", "virt", "-bios", "none", "-cpu", CPU, "-nographic",
                 "-kernel", str(build_program("hyp", VU_SPEC=1)), timeout=120)
    out = r.stdout.decode()
    assert r.returncode == 0, out[-3000:] + r.stderr.decode()[-2000:]
    vu_traps = [block for block in out.split("HS trap ")
                if "hstatus 0000000000000080" in block]  # SPV, SPVP 0: from VU
    tvals = [line.split()[-1] for block in vu_traps for line in block.splitlines()
             if line.strip().startswith("tval")]
    causes = [block.split()[1] for block in vu_traps]
    assert tvals == ["0000000010500073", "00000000100022f3", "0000000010200073",
                     "0000000012000073"]  # wfi, csrr sstatus, sret, sfence.vma
    assert causes == ["0000000000000016"] * 4


def test_cpu_models_and_device_tree(tmp_path, build_program):
    assert "h" not in parse_cpu("rv64").extensions
    isa = parse_cpu(CPU)
    assert isa.isa_string.startswith("rv64imafdch_") and "h" in isa.isa_extensions
    assert MAX_ISA.has("h") and parse_cpu("rva23s64").has("h")
    rva23 = parse_cpu("rva23s64")
    assert "h" not in rva23.missing and not any(e.startswith("sh") for e in rva23.missing)
    assert "shgatpa" in rva23.isa_extensions and "shgatpa" not in isa.isa_extensions
    if not shutil.which("dtc"):
        pytest.skip("dtc (device-tree-compiler) is not installed")
    dtb = tmp_path / "virt.dtb"
    r = run_pemu("-M", f"virt,dumpdtb={dtb}", "-m", "64M", "-cpu", CPU, "-bios", "none",
                 "-kernel", str(build_program("finisher_fail")), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                         text=True, check=True).stdout
    assert f'riscv,isa = "{isa.isa_string}";' in dts
    line = next(ln.strip() for ln in dts.splitlines()
                if ln.strip().startswith("riscv,isa-extensions = "))
    names = line.split(" = ", 1)[1].rstrip(";").strip('"').replace('", "', "\\0")
    assert "h" in names.split("\\0")


def test_opensbi_sees_h_and_runs_an_s_mode_payload(build_program):
    """Debian's OpenSBI reads misa: its banner names H; the payload (SBI calls, an
    Sstc timer interrupt, SRST) runs in HS-mode as before."""
    if not OPENSBI.exists():
        pytest.skip("Debian's opensbi is not installed")
    elf = build_program("sbi_payload", text_base=0x8020_0000)
    r = run_pemu("-M", "virt", "-m", "128M", "-cpu", CPU, "-nographic", "-kernel", str(elf),
                 timeout=300)
    out = r.stdout.decode(errors="replace")
    assert "Boot HART Base ISA        : rv64imafdch" in out
    assert "payload: timer interrupt ok" in out
    assert r.returncode == 0, out[-500:] + r.stderr.decode()


# -- the two-stage walk against the spec --------------------------------------------------

G_ROOT, VS_ROOT, LEAF_S, LEAF_U = 0x8010_0000, 0x8020_0000, 0xCF, 0xDF


def _two_stage(ptes: dict[int, int], vsatp_root: int = VS_ROOT) -> TwoStage:
    hyp = HypState()
    hyp.hgatp = (8 << 60) | (G_ROOT >> 12)  # Sv39x4
    hyp.vsatp = (8 << 60) | (vsatp_root >> 12)
    ps = SimpleNamespace(hyp=hyp, mstatus=0)
    return TwoStage(ps, lambda a: ptes.get(a, 0), ptes.__setitem__, lambda a: True,
                    lambda: 0)


def _g_gigapage(gpa: int, hpa: int) -> tuple[int, int]:
    return G_ROOT + (gpa >> 30) * 8, (hpa >> 12) << 10 | LEAF_U


def test_sv39x4_root_is_indexed_by_eleven_bits():
    # GPA 0x100_4000_0000 (bit 40 set: beyond Sv39, inside Sv39x4) -> HPA 0x8000_0000
    ptes = dict([_g_gigapage(0x100_4000_0000, 0x8000_0000)])
    ts = _two_stage(ptes)
    ts.ps.hyp.vsatp = 0  # VS-stage Bare: the guest address is the GPA
    paddr, perms, _ = ts.translate(0x100_4000_1234, ACCESS_WRITE, PRV_S, False)
    assert paddr == 0x8000_1234 and perms & PERM_W
    with pytest.raises(GuestTrap) as e:  # beyond 41 bits: a guest-page fault
        ts.translate(1 << 41, ACCESS_READ, PRV_S, False)
    assert e.value.cause == LOAD_GUEST_PAGE_FAULT and e.value.gpa == 1 << 41


def test_implicit_page_table_access_reports_the_original_access():
    """The VS root at an unmapped GPA: a store's walk faults as a *store* guest-page
    fault (QEMU 7.2 reports a load one), htval's GPA is the PTE's."""
    ts = _two_stage({}, vsatp_root=0xC000_4000)
    with pytest.raises(GuestTrap) as e:
        ts.translate(0x8000_0010, ACCESS_WRITE, PRV_S, False)
    assert e.value.cause == STORE_GUEST_PAGE_FAULT
    assert e.value.gpa == 0xC000_4000 + 2 * 8 and e.value.tval == 0x8000_0010
    assert e.value.gva


def test_vu_access_to_a_guest_s_page_is_a_page_fault():
    """hlv with hstatus.SPVP=0 accesses as VU: the guest's S pages fault in the
    VS-stage (QEMU 7.2 raises an access fault to M instead)."""
    ptes = dict([_g_gigapage(0x8000_0000, 0x8000_0000)])
    ptes[VS_ROOT + 2 * 8] = (0x8000_0000 >> 12) << 10 | LEAF_S
    ts = _two_stage(ptes)
    assert ts.translate(0x8000_0040, ACCESS_READ, PRV_S, False)[0] == 0x8000_0040
    with pytest.raises(RiscvTrap) as e:
        ts.translate(0x8000_0040, ACCESS_READ, PRV_U, False)
    assert e.value.cause == LOAD_PAGE_FAULT and e.value.tval == 0x8000_0040
    ptes[G_ROOT + 2 * 8] &= ~0x10  # a G-stage leaf without U: a guest-page fault
    with pytest.raises(GuestTrap) as e:
        ts.translate(0x8000_0040, ACCESS_READ, PRV_S, False)
    # (the VS-stage's own page-table read is the first access the G-stage refuses)
    assert e.value.cause == LOAD_GUEST_PAGE_FAULT and e.value.gpa == VS_ROOT + 2 * 8


def test_sv48x4_walks_four_levels_from_a_wide_root():
    gpa, table = 0x2_0000_8000_0000, 0x8030_0000
    ptes = {G_ROOT + (gpa >> 39) * 8: (table >> 12) << 10 | 1,  # root index 1024
            table + ((gpa >> 30) & 0x1FF) * 8: (0x8000_0000 >> 12) << 10 | LEAF_U}
    ts = _two_stage(ptes)
    ts.ps.hyp.hgatp = (9 << 60) | (G_ROOT >> 12)  # Sv48x4: GPAs of 50 bits
    ts.ps.hyp.vsatp = 0
    assert ts.translate(gpa + 0x1234, ACCESS_READ, PRV_S, False)[0] == 0x8000_1234


# -- the CSR view of V=1 on a hart (no guest code: the CSR helpers called directly) -------

def _hart(cpu: str):
    import threading

    from pemu.accel.tcg.system_cpu import SystemTranslator
    from pemu.memory.address_space import AddressSpace
    from pemu.target.riscv.hart import RiscvHart
    from pemu.target.riscv.tcg_target import riscv64_target

    space = AddressSpace("memory")
    dram = space.add_ram("ram", 0x8000_0000, 1 << 20)
    isa = parse_cpu(cpu)
    hart = RiscvHart(0, SystemTranslator(space, dram, riscv64_target(isa)), space,
                     lambda: 0, threading.Event(), isa)
    hart.reset(0x8000_0000)
    return hart


def _csr(hart, number: int, value: int | None = None) -> int:
    from pemu.target.riscv import csr
    from pemu.target.riscv.csr_hyp import csr_access_virt

    access = csr_access_virt if hart.ps.virt else csr.csr_access
    if value is None:
        return access(hart, number, csr.ACTION_READ, 0, 0x1234)
    return access(hart, number, csr.ACTION_WRITE, value, 0x1234)


def _cause(hart, number: int, value: int | None = None) -> int:
    with pytest.raises(RiscvTrap) as e:
        _csr(hart, number, value)
    assert e.value.tval == 0x1234  # the instruction bits
    return e.value.cause


def test_v1_csr_redirection_and_virtual_instructions():
    hart = _hart("rv64,h=true,smstateen=true")
    ps = hart.ps
    assert _cause(_hart("rv64"), 0x600) == 2  # no H: hstatus is illegal, even from M
    _csr(hart, 0x30C, (1 << 63) | (1 << 62))  # mstateen0: SE0, ENVCFG
    _csr(hart, 0x140, 0x11)  # sscratch
    _csr(hart, 0x300, 1 << 20)  # mstatus.TVM: hgatp is M's alone
    ps.set_priv(PRV_S)  # HS
    assert _cause(hart, 0x680) == 2
    ps.set_priv(3)
    _csr(hart, 0x300, 0)
    ps.set_priv(PRV_S)
    _csr(hart, 0x680, 8 << 60)  # hgatp Sv39x4
    _csr(hart, 0x240, 0x22)  # vsscratch
    assert _csr(hart, 0x60C, -1 & ((1 << 64) - 1)) == 0
    assert _csr(hart, 0x60C) == (1 << 63) | (1 << 62)  # only mstateen0's bits
    ps.set_virt(True)  # VS
    assert _csr(hart, 0x140) == 0x22  # sscratch is vsscratch
    assert _cause(hart, 0x600) == 22  # hstatus from VS: a virtual instruction
    assert _cause(hart, 0x300) == 2  # an M CSR: illegal
    assert _cause(hart, 0x14D) == 22  # stimecmp without henvcfg.STCE
    _csr(hart, 0x10A, 0)  # senvcfg: hstateen0.ENVCFG allows it
    ps.set_virt(False)
    _csr(hart, 0x60C, 1 << 63)  # hstateen0: SE0 only
    ps.set_virt(True)
    assert _cause(hart, 0x10A) == 22
    _csr(hart, 0x10C)  # sstateen0 (SE0)
    ps.set_priv(PRV_U)  # VU: S CSRs are virtual instructions
    assert _cause(hart, 0x140) == 22
    ps.set_priv(3)
    ps.set_virt(False)
    assert _csr(hart, 0x140) == 0x11  # the host's sscratch untouched


def test_v1_vector_state_needs_and_dirties_vsstatus_vs():
    from pemu.target.riscv.vector_exec import vs_check

    hart = _hart("rv64,h=true,v=true")
    ps = hart.ps
    _csr(hart, 0x300, (1 << 9) | (1 << 11))  # mstatus.VS Initial, MPP S
    ps.set_priv(PRV_S)
    _csr(hart, 0x200, 0)  # vsstatus.VS Off
    ps.set_virt(True)
    with pytest.raises(RiscvTrap):
        vs_check(hart)
    ps.hyp.vsstatus |= 1 << 9  # Initial
    vs_check(hart)
    assert ps.hyp.vsstatus >> 9 & 3 == 3 and ps.mstatus >> 9 & 3 == 3  # both Dirty
    assert _csr(hart, 0x100) >> 63  # the guest's sstatus.SD


def test_hlv_hsv_across_a_page_boundary():
    """hgatp and vsatp Bare: the guest address is the host one; an 8-byte access at
    0x...ffc takes 4 bytes from each page."""
    from pemu.target.riscv.insn_hyp import HLV_HELPER, HSV_HELPER

    hart = _hart("rv64,h=true")
    hart.ps.set_priv(PRV_S)
    space = hart.regime.space
    addr = 0x8000_1FFC
    HSV_HELPER.fn(hart, addr, 0x8877_6655_4433_2211, 8, 0)
    assert space.load(0x8000_1FFC, 4) == 0x4433_2211
    assert space.load(0x8000_2000, 4) == 0x8877_6655
    assert HLV_HELPER.fn(hart, addr + 2, 2 | 4, 0) == 0x6655_4433  # hlv.w, positive
    assert HLV_HELPER.fn(hart, addr + 1, 3 | 4, 0) == 0x0088_7766_5544_3322
    hart.ps.set_priv(PRV_U)  # U-mode without hstatus.HU: illegal
    with pytest.raises(RiscvTrap) as e:
        HLV_HELPER.fn(hart, addr, 3 | 4, 0x6C00_4073)
    assert e.value.cause == 2 and e.value.tval == 0x6C00_4073
