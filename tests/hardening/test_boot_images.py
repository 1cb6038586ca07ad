"""Bad -kernel/-initrd/-dtb files end in one clear line and a non-zero exit, never a
hang, a traceback or gigabytes read."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from pemu.fdt.header import FdtHeaderError, check_fdt_blob
from pemu.fdt.writer import FDT
from pemu.hw.image_file import ImageFileError, read_image, write_zeros
from tests.gdbstub.conftest import ROOT

PROG = "pemu-system-riscv64"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-display", "none", "-serial", "null", *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))


def _assert_refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(PROG + ": "), proc.stderr
    for word in words:
        assert word in lines[0], proc.stderr


def _elf_with_segment(memsz: int) -> bytes:
    """A riscv64 ELF with one PT_LOAD at 0x80000000: 4 bytes in the file, ``memsz`` in RAM."""
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 243, 1, 0x80000000, 64, 0, 0, 64, 56, 1, 64, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, 0x1000, 0x80000000, 0x80000000, 4, memsz, 0x1000)
    data = header + phdr
    return data + bytes(0x1000 - len(data)) + b"\x6f\x00\x00\x00"  # j .


def test_read_image_refuses_devices_fifos_and_oversize(tmp_path):
    with pytest.raises(ImageFileError, match="not a regular file"):
        read_image("/dev/zero", 1 << 20)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ImageFileError, match="not a regular file"):
        read_image(str(fifo), 1 << 20)  # returns at once: a FIFO is never opened blocking
    big = tmp_path / "big"
    big.write_bytes(bytes(4097))
    with pytest.raises(ImageFileError, match="larger than guest RAM"):
        read_image(str(big), 4096)
    assert read_image(str(big), 4097) == bytes(4097)


def test_write_zeros_goes_in_bounded_chunks():
    sizes = []
    write_zeros(lambda addr, data: sizes.append((addr, len(data))), 0x1000, (3 << 20) + 5)
    assert sum(n for _, n in sizes) == (3 << 20) + 5
    assert max(n for _, n in sizes) <= 1 << 20
    assert sizes[1][0] == 0x1000 + (1 << 20)


def test_kernel_dev_zero_and_fifo_are_refused(tmp_path):
    _assert_refused(_run("-kernel", "/dev/zero"), "could not load kernel '/dev/zero'")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _assert_refused(_run("-kernel", str(fifo)), "not a regular file")


def test_segment_larger_than_ram_is_refused(tmp_path):
    kernel = tmp_path / "big.elf"
    kernel.write_bytes(_elf_with_segment(4 << 30))
    _assert_refused(_run("-bios", "none", "-kernel", str(kernel)), "does not fit in RAM")


def test_dtb_must_be_a_device_tree(tmp_path):
    kernel = tmp_path / "k.elf"
    kernel.write_bytes(_elf_with_segment(4))
    junk = tmp_path / "junk.dtb"
    junk.write_bytes(os.urandom(100))
    _assert_refused(_run("-bios", "none", "-kernel", str(kernel), "-dtb", str(junk)),
                    "FDT_ERR_BADMAGIC")


def test_fdt_header_checks():
    good = FDT().to_bytes()
    assert check_fdt_blob(good + b"trailing") == len(good)
    with pytest.raises(FdtHeaderError, match="TRUNCATED"):
        check_fdt_blob(good[:-1])
    header = struct.pack(">10I", 0xD00DFEED, 1 << 20, 56, 56, 40, 17, 16, 0, 0, 0)
    with pytest.raises(FdtHeaderError, match="TRUNCATED"):
        check_fdt_blob(header + bytes(64))  # totalsize promises more than the file has
    with pytest.raises(FdtHeaderError, match="BADMAGIC"):
        check_fdt_blob(bytes(64))
