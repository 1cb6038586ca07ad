"""``-cpu MODEL,ext=on|off`` on the virt board: what the harts decode and what the device
tree's ``riscv,isa`` says follow the properties, as on QEMU 7.2."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pemu.target.riscv.isa import MAX_ISA
from tests.system.conftest import run_pemu

# One backend: decoding does not depend on it (test_riscv_scalar_ext.py runs both).
CLMUL = 0x0AC59533  # clmul a0, a1, a2 (Zbc, also Zbkc)
XPERM8 = 0x28C5C533  # xperm8 a0, a1, a2 (Zbkx)
CZERO_EQZ = 0x0EC5D533  # czero.eqz a0, a1, a2 (Zicond)
ILLEGAL = 3  # the probe's exit code: mcause 2 + 1


@pytest.mark.parametrize(("insn", "cpu", "status"), [
    (CLMUL, "rv64", 0), (CLMUL, "rv64,zbc=off", ILLEGAL), (CLMUL, "rv64,zbc=off,zbkc=on", 0),
    (XPERM8, "rv64", ILLEGAL), (XPERM8, "rv64,zbkx=true", 0), (XPERM8, "max", 0),
    (CZERO_EQZ, "rv64", ILLEGAL), (CZERO_EQZ, "max", 0), (CZERO_EQZ, "max,zicond=false", ILLEGAL),
])
def test_instructions_follow_the_cpu_properties(build_program, insn, cpu, status):
    elf = build_program("isa_probe", INSN=insn)
    r = run_pemu("-M", "virt", "-m", "64M", "-bios", "none", "-cpu", cpu, "-kernel", str(elf),
                 timeout=60)
    assert r.returncode == status, r.stderr.decode()


@pytest.mark.parametrize(("cpu", "isa"), [
    ("rv64", "rv64imafdc_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbs_sstc"),
    ("rv64,zbkb=on,zbs=off", "rv64imafdc_zicsr_zifencei_zihintpause_zba_zbb_zbc_zbkb_sstc"),
    ("max", MAX_ISA.isa_string),
])
def test_device_tree_isa_string_says_what_is_enabled(tmp_path, build_program, cpu, isa):
    if not shutil.which("dtc"):
        pytest.skip("dtc (device-tree-compiler) is not installed")
    dtb = tmp_path / "virt.dtb"
    r = run_pemu("-M", f"virt,dumpdtb={dtb}", "-m", "64M", "-smp", "2", "-cpu", cpu,
                 "-bios", "none", "-kernel", str(build_program("finisher_fail")), timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    dts = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True,
                         text=True, check=True).stdout
    assert dts.count(f'riscv,isa = "{isa}";') == 2  # both harts


@pytest.mark.parametrize(("cpu", "message"), [
    ("rv64,vlen=100", "unsupported vlen=100"), ("rv64,zbc=maybe", "expects 'on' or 'off'"),
    ("rv64,c=off", "cannot disable 'c'"), ("nosuch,zbc=on", "unknown CPU model"),
])
def test_bad_cpu_properties_are_reported(cpu, message):
    r = run_pemu("-M", "virt", "-bios", "none", "-cpu", cpu, timeout=60)
    assert r.returncode == 1
    assert message in r.stderr.decode()
    assert b"Traceback" not in r.stderr
