"""Building the bare-metal A64 programs of this folder (at test time: binaries are never
committed), for every test module that runs them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
LOAD_ADDRESS = 0x40080000  # RAM + 512 KiB: where the virt board loads an ELF's text


def need(tool: str) -> None:
    """Skip the test (with the reason) when a host tool is missing."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/install-deps.sh)")


def assemble(out_dir: Path, source: str, name: str | None = None,
             defs: tuple[str, ...] | list[str] = ()) -> Path:
    """``source`` (a .S file here, ``common.inc`` on its include path) assembled with
    ``defs`` (``--defsym`` options) and linked at LOAD_ADDRESS; the ELF's path."""
    need("aarch64-linux-gnu-as")
    name = name or Path(source).stem
    obj, elf = out_dir / f"{name}.o", out_dir / f"{name}.elf"
    subprocess.run(["aarch64-linux-gnu-as", *defs, "-I", str(HERE), "-o", str(obj),
                    str(HERE / source)], check=True)
    subprocess.run(["aarch64-linux-gnu-ld", f"-Ttext={LOAD_ADDRESS:#x}", "-o", str(elf),
                    str(obj)], check=True)
    return elf
