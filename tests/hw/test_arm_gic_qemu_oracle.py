"""The GICv3 (with the PL011's and PL031's identification) against QEMU's own: one
bare-metal program (arm_gic_oracle_script.py) on ``qemu-system-aarch64 -M virt`` and on
``pemu-system-aarch64 -M virt``; every value read must be the same."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from arm_gic_oracle_script import assembly, script

QEMU = "qemu-system-aarch64"
TIMEOUT_S = 120


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/install-deps.sh)")


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    if importlib.util.find_spec("pemu.cli.system_aarch64") is None:
        pytest.skip("pemu-system-aarch64 is not built yet")
    _need("aarch64-linux-gnu-as")
    _need(QEMU)
    out = tmp_path_factory.mktemp("gic-oracle")
    (out / "gic.S").write_text(assembly(script()))
    subprocess.run(["aarch64-linux-gnu-as", "-o", str(out / "gic.o"), str(out / "gic.S")],
                   check=True)
    subprocess.run(["aarch64-linux-gnu-ld", "-Ttext=0x40080000", "-o", str(out / "gic.elf"),
                    str(out / "gic.o")], check=True)
    return out / "gic.elf"


def _run(cmd: list[str]) -> list[str]:
    result = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().splitlines()


def test_gicv3_reads_like_qemu(program: Path) -> None:
    common = ["-M", "virt,gic-version=3", "-cpu", "cortex-a57", "-nographic", "-no-reboot",
              "-kernel", str(program)]
    theirs = _run([QEMU, *common])
    ours = _run([sys.executable, "-m", "pemu.cli.system_aarch64", *common])
    reads = [step for step in script() if step[0] in ("rd", "mrs")]
    assert len(theirs) == len(reads), "QEMU did not run the whole script"
    diffs = [f"read {i} {reads[i]}: qemu {t} pemu {o}"
             for i, (t, o) in enumerate(zip(theirs, ours, strict=False)) if t != o]
    assert not diffs and len(ours) == len(theirs), "\n".join(diffs[:40]) + \
        f"\n({len(ours)} lines from pemu, {len(theirs)} from QEMU)"
    # The reference itself shows the behaviour tested (so both cannot agree on nothing).
    assert "0000000000000021" in theirs  # SPI 33 acknowledged
    assert "00000000000003ff" in theirs  # spurious
