"""An image whose backing file name holds a NUL byte is refused with one clear line."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

from tests.gdbstub.conftest import ROOT


def _pemu_img(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pemu.block.img.main", *args],
                          capture_output=True, text=True, timeout=60, cwd=str(ROOT),
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_backing_name_with_nul_is_a_clear_error(tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    assert _pemu_img("create", "-f", "qcow2", str(base), "1M").returncode == 0
    assert _pemu_img("create", "-f", "qcow2", "-b", str(base), "-F", "qcow2",
                     str(top)).returncode == 0
    data = bytearray(top.read_bytes())
    offset, size = struct.unpack_from(">QI", data, 8)
    assert size > 3
    data[offset + 2] = 0  # the name keeps its length, a NUL inside it
    top.write_bytes(data)
    proc = _pemu_img("convert", "-O", "raw", str(top), str(tmp_path / "out.raw"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "NUL byte" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
