"""The RVA profile models and the supervisor extensions on the virt board.

A bare-metal program (programs/sv_ext.S) checks Svnapot, Svpbmt, Svade/Svadu, Svinval
and the Zicbom/Zicboz menvcfg checks in S-mode; the device tree must list exactly the
enabled extensions in ``riscv,isa-extensions`` (and the cache-block sizes), and
``-cpu rva23s64`` is complete (pointer masking was the last piece), so the board says
nothing about missing extensions.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.isa import MISSING, RVA22S64, parse_cpu
from pemu.target.riscv.mmu import (
    ACCESS_READ,
    ACCESS_WRITE,
    PRV_S,
    WALK_AD_FAULT,
    WALK_NAPOT,
    WALK_PBMT,
    walk,
)
from tests.system.conftest import run_pemu


def _run(elf, cpu: str):
    return run_pemu("-M", "virt", "-bios", "none", "-cpu", cpu, "-kernel", str(elf),
                    "-nographic", timeout=120)


@pytest.mark.usefixtures("tcg_backend")  # the walk is Python, but the TLB use is not
@pytest.mark.parametrize(("cpu", "svade"), [("max", 0), ("rva22s64,svnapot=on", 1)])
def test_supervisor_extensions_in_s_mode(build_program, cpu: str, svade: int) -> None:
    r = _run(build_program("sv_ext", SVADE=svade), cpu)
    assert r.returncode == 0, f"check {r.returncode} failed: {r.stderr.decode()}"
    assert b"DONE" in r.stdout


def _sv39(entries: dict[int, int]):
    mem = dict(entries)
    return (lambda a: mem.get(a, 0)), mem.__setitem__, mem


ROOT, L1, L0 = 0x8000_0000, 0x8000_1000, 0x8000_2000
SATP = 8 << 60 | ROOT >> 12


def _walk(leaf: int, vaddr: int, ext: int, access: int = ACCESS_READ):
    load, store, mem = _sv39({ROOT: (L1 >> 12) << 10 | 1, L1: (L0 >> 12) << 10 | 1,
                              L0 + 8 * (vaddr >> 12 & 0x1FF): leaf})
    return walk(SATP, vaddr, access, PRV_S, False, False, load, store, lambda a: True, ext)


RWAD = 0b1100_0111


def test_napot_pbmt_and_ad_bits_follow_the_walk_extensions() -> None:
    napot = 1 << 63 | (0x8004_8000 >> 12) << 10 | RWAD  # 64 KiB at 0x80040000
    with pytest.raises(RiscvTrap):
        _walk(napot, 0x1_3000, 0)  # N is reserved without Svnapot
    t = _walk(napot, 0x1_3abc, WALK_NAPOT)
    assert (t.paddr, t.shift) == (0x8004_3abc, 16)
    with pytest.raises(RiscvTrap):  # only the 64 KiB size (ppn[3:0] = 1000) exists
        _walk(napot ^ (0b1100 << 10), 0x1_3000, WALK_NAPOT)
    nc = 1 << 61 | (0x8005_0000 >> 12) << 10 | RWAD
    with pytest.raises(RiscvTrap):
        _walk(nc, 0x5000, 0)
    assert _walk(nc, 0x5008, WALK_PBMT).paddr == 0x8005_0008
    with pytest.raises(RiscvTrap):
        _walk(nc | 3 << 61, 0x5000, WALK_PBMT)  # PBMT 3 is reserved
    clean = (0x8005_0000 >> 12) << 10 | 0b0111  # A and D clear
    assert _walk(clean, 0x5000, 0).paddr == 0x8005_0000  # updated by the walk
    for access in (ACCESS_READ, ACCESS_WRITE):
        with pytest.raises(RiscvTrap):
            _walk(clean, 0x5000, WALK_AD_FAULT, access)
    assert _walk(clean | 0x40, 0x5000, WALK_AD_FAULT).paddr == 0x8005_0000
    with pytest.raises(RiscvTrap):  # a write needs D too
        _walk(clean | 0x40, 0x5000, WALK_AD_FAULT, ACCESS_WRITE)


def test_profile_models() -> None:
    rva22 = parse_cpu("rva22s64")
    assert not rva22.missing
    assert set(RVA22S64) <= rva22.extensions
    assert not rva22.has("zbc") and not rva22.has("svadu")  # Svade: A/D faults
    rva23 = parse_cpu("rva23s64")
    assert rva23.missing == ()
    assert rva23.has("ssnpm") and rva23.has("supm")  # pointer masking (for U/VU-mode)
    assert rva23.has("h") and "h" not in rva23.missing
    assert rva23.has("v") and "v" not in rva23.missing
    assert rva23.has("zicond") and rva23.has("zimop") and rva23.has("svnapot")
    assert MISSING["rva23s64"] == rva23.missing


def _dts(tmp_path, build_program, cpu: str) -> str:
    if not shutil.which("dtc"):
        pytest.skip("dtc (device-tree-compiler) is not installed")
    dtb = tmp_path / "virt.dtb"
    r = run_pemu("-M", f"virt,dumpdtb={dtb}", "-m", "64M", "-cpu", cpu, "-bios", "none",
                 "-kernel", str(build_program("finisher_fail")), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                          text=True, check=True).stdout


def test_device_tree_lists_the_extensions(tmp_path, build_program) -> None:
    dts = _dts(tmp_path, build_program, "rva22s64")
    isa = parse_cpu("rva22s64")
    listed = _string_list(dts, "riscv,isa-extensions")
    assert listed == list(isa.isa_extensions)
    assert {"i", "zicboz", "zfhmin", "svpbmt"} <= set(listed)
    assert 'riscv,isa-base = "rv64i";' in dts
    assert f'riscv,isa = "{isa.isa_string}";' in dts
    assert "riscv,cbom-block-size = <0x40>;" in dts
    assert "riscv,cboz-block-size = <0x40>;" in dts
    plain = _dts(tmp_path, build_program, "rv64")
    assert "cbom-block-size" not in plain
    assert 'mmu-type = "riscv,sv57";' in plain
    assert _string_list(plain, "riscv,isa-extensions")[-4:] == ["zbb", "zbc", "zbs", "sstc"]


def _string_list(dts: str, name: str) -> list[str]:
    """A string-list property of the first node that has it (dtc prints a list with
    one-letter strings as one string with \\0 separators)."""
    line = next(ln.strip() for ln in dts.splitlines() if ln.strip().startswith(name + " = "))
    value = line.split(" = ", 1)[1].rstrip(";")
    return value.strip('"').replace('", "', "\\0").split("\\0")


def test_rva23s64_is_complete(build_program) -> None:
    r = run_pemu("-M", "virt", "-bios", "none", "-cpu", "rva23s64", "-kernel",
                 str(build_program("finisher_fail")), timeout=60)
    assert r.returncode == 42  # it runs
    assert "warning" not in r.stderr.decode()  # nothing of the profile is missing


@pytest.mark.parametrize(("levels", "cpu", "status"), [
    (4, "rv64,sv57=off", 0), (5, "rv64,sv57=off", 2), (4, "rv64,sv48=off", 2)])
def test_satp_modes_follow_the_sv_properties(build_program, levels: int, cpu: str,
                                             status: int) -> None:
    """paging.S's check 2 is that satp takes the mode under test (WARL otherwise)."""
    r = _run(build_program("paging", LEVELS=levels), cpu)
    assert r.returncode == status, r.stderr.decode()


def test_device_tree_mmu_type(tmp_path, build_program) -> None:
    assert 'mmu-type = "riscv,sv48";' in _dts(tmp_path, build_program, "rv64,sv57=off")
