"""Shared fixtures for the block-layer tests: the real qemu-img as an oracle."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest

from pemu.block.img.main import main as pemu_img_main

QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")


# Debian's qemu-img times PBKDF2 with getrusage() before it writes a LUKS header, and
# gives up with this message when its first round (2^15 iterations) measures 0 ms of
# user time.  With SHA-256 that round takes a few ms, less than a scheduler tick on a
# host with SHA instructions, and half the tries fail on such a virtual machine (all 8
# did once in CI).  SHA-512 makes the round several ticks long (0 of 40 failed):
# images qemu-img creates for the tests use it.  What still fails is the oracle's
# environment, not a verdict on pemu: run it again.
QEMU_PBKDF_TIMING_FAILURE = "Unable to get accurate CPU usage"
QEMU_LUKS_TIMEABLE_HASH = "hash-alg=sha512"
QEMU_IMG_TRIES = 8


@pytest.fixture
def qemu_img():
    if QEMU_IMG is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")

    def run(*args: str, check: bool = True, json_out: bool = False):
        for _ in range(QEMU_IMG_TRIES):
            p = subprocess.run([QEMU_IMG, *args], capture_output=True, text=True)
            if p.returncode == 0 or QEMU_PBKDF_TIMING_FAILURE not in p.stderr:
                break
        if check and p.returncode != 0:
            raise AssertionError(f"qemu-img {' '.join(args)} failed ({p.returncode}): "
                                 f"{p.stderr}")
        return json.loads(p.stdout) if json_out else p
    return run


@pytest.fixture
def qemu_io():
    if QEMU_IO is None:
        pytest.skip("qemu-io (Debian qemu-utils) is not installed")

    def run(filename: str, *cmds: str, fmt: str | None = None):
        args = [QEMU_IO]
        if fmt:
            args += ["-f", fmt]
        for c in cmds:
            args += ["-c", c]
        p = subprocess.run(args + [filename], capture_output=True, text=True)
        assert p.returncode == 0 and "error" not in p.stdout.lower() + p.stderr.lower(), \
            p.stdout + p.stderr
        return p.stdout
    return run


class PemuImg:
    """Runs pemu-img in-process (fast) and returns (status, stdout, stderr)."""

    def __init__(self, capsys) -> None:
        self.capsys = capsys

    def __call__(self, *args: str, expect: int | None = 0):
        self.capsys.readouterr()
        status = pemu_img_main(list(args))
        out, err = self.capsys.readouterr()
        if expect is not None:
            assert status == expect, f"pemu-img {' '.join(args)} -> {status}: {err}"
        return status, out, err

    def json(self, *args: str, expect: int | None = 0):
        return json.loads(self(*args, expect=expect)[1])


@pytest.fixture
def pemu_img(capsys):
    return PemuImg(capsys)


def run_pemu_img_subprocess(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pemu.block.img.main", *args],
                          capture_output=True, text=True)


def pattern_data(size: int, seed: int = 1, compressible: bool = True) -> bytes:
    """Mixed content: text runs (compressible), random bytes, zero holes."""
    r = random.Random(seed)
    out = bytearray(size)
    pos = 0
    while pos < size:
        n = min(size - pos, r.choice([512, 4096, 65536, 200000]))
        kind = r.randrange(3)
        if kind == 0:
            pass  # zeros
        elif kind == 1 and compressible:
            out[pos:pos + n] = (f"block {pos} ".encode() * (n // 8 + 1))[:n]
        else:
            out[pos:pos + n] = r.randbytes(n)
        pos += n
    return bytes(out)
