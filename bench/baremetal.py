"""Build pemu's bare-metal x86 guests (tests/kvm/guests/*.S) with the host's binutils.

Shared by the KVM benchmark (bench/bench_kvm.py) and the KVM tests, which reach it through
tests/kvm/baremetal.py; it lives here so that the benchmark does not depend on the
test package.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

GUEST_DIR = Path(__file__).resolve().parents[1] / "tests" / "kvm" / "guests"
LOAD_ADDR = 0x100000


def have_binutils() -> bool:
    return shutil.which("as") is not None and shutil.which("ld") is not None


def assemble(name: str, out_dir: Path, bits: int = 32, load_addr: int = LOAD_ADDR,
             source: str | None = None) -> Path:
    """Assemble guests/<name>.S (or ``source``) into a flat binary linked at load_addr."""
    src = out_dir / f"{name}.S"
    src.write_text(source if source is not None else (GUEST_DIR / f"{name}.S").read_text())
    obj, binary = out_dir / f"{name}.o", out_dir / f"{name}.bin"
    as_flag, ld_emul = ("--32", "elf_i386") if bits == 32 else ("--64", "elf_x86_64")
    subprocess.run(["as", as_flag, "-I", str(GUEST_DIR), "-o", str(obj), str(src)],
                   check=True, capture_output=True, text=True)
    subprocess.run(["ld", "-m", ld_emul, f"-Ttext=0x{load_addr:x}", "--oformat=binary",
                    "-o", str(binary), str(obj)], check=True, capture_output=True, text=True)
    return binary
