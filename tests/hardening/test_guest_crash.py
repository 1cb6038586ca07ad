"""Crash consistency with a real guest: a bare-metal program writes through virtio-blk
to a qcow2 disk while pemu is killed with SIGKILL at random points, several times.
After each kill `qemu-img check` finds no corruption and every write the guest saw
flushed (its "F run i" lines) is on the disk, whole.  (tests/block/test_crash.py does
the same for the block layer alone, without a guest or a device.)"""

from __future__ import annotations

import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.hardening.test_sandbox import _backend
from tests.system.conftest import ROOT

GUEST = Path(__file__).with_name("guests") / "crash_writer.c"
MAGIC = 0x4352415348424C4B
POSITIONS, PER_RUN = 2048, 512  # as in crash_writer.c
BLOCK = 4096
KILLS = 3


@pytest.fixture(scope="module")
def crash_guest(tmp_path_factory) -> Path:
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        pytest.skip("riscv64-linux-gnu-gcc is not installed")
    out = tmp_path_factory.mktemp("guest") / "crash_writer.elf"
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-static", "-ffreestanding", "-O2",
                    "-march=rv64gc", "-mabi=lp64d", "-mcmodel=medany",
                    "-Wl,-Ttext=0x80000000", "-Wl,--build-id=none", "-Wl,-N",
                    "-o", str(out), str(GUEST)], check=True, capture_output=True)
    return out


def position(run: int, i: int) -> int:
    return (run * PER_RUN + i % PER_RUN) % POSITIONS


def pattern_ok(block: bytes, run: int, i: int) -> bool:
    words = struct.unpack(f"<{BLOCK // 8}Q", block)
    return all(words[k] == (run << 40) ^ (i << 12) ^ k ^ 0x9E3779B97F4A7C15
               for k in range(3, len(words)))


def run_until_killed(guest: Path, image: Path, rng: random.Random) -> tuple[int, int]:
    """Start pemu, let the guest flush a random number of times, SIGKILL it;
    (run number, last i the guest saw flushed)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-bios", "none", "-kernel", str(guest), "-display", "none", "-serial", "stdio",
         *_backend(), "-drive", f"file={image},format=qcow2,if=none,id=d0",
         "-device", "virtio-blk-device,drive=d0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    flushes_wanted = rng.randint(1, 80)
    state = {"run": 0, "flushed": 0, "flushes": 0}
    enough = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            parts = line.split()
            if parts[:1] == [b"R"]:
                state["run"] = int(parts[1])
            elif parts[:1] == [b"F"] and len(parts) == 3:
                state["flushed"] = int(parts[2])
                state["flushes"] += 1
                if state["flushes"] >= flushes_wanted:
                    enough.set()
            elif parts[:1] == [b"E"]:
                state["error"] = line.decode()
                enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert enough.wait(120), "the guest never flushed"
        time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next writes
        # the guest's view at the moment of the kill: what it printed so far
        run, flushed = state["run"], state["flushed"]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        reader.join(5)
    assert "error" not in state, state["error"]
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    return run, flushed


def test_guest_writes_survive_sigkill(crash_guest, tmp_path):
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img (Debian qemu-utils) is not installed")
    image, flat = tmp_path / "disk.qcow2", tmp_path / "flat.raw"
    # 129M: sector 0's 64 KiB cluster, then the 2048 positions
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(image), "129M"], check=True,
                   capture_output=True)
    rng = random.Random(int(os.environ.get("PEMU_CRASH_SEED", "17")))
    floors: dict[int, tuple[int, int]] = {}  # position -> newest flushed (run, i)
    for kill in range(1, KILLS + 1):
        run, flushed = run_until_killed(crash_guest, image, rng)
        assert run == kill and flushed > 0  # the guest's run counter, flushed at start
        for i in range(1, flushed + 1):
            floors[position(run, i)] = (run, i)
        check = subprocess.run(["qemu-img", "check", str(image)], capture_output=True,
                               text=True)
        # 0: clean; 3: leaked clusters only (allocated, not yet referenced: harmless)
        assert check.returncode in (0, 3), f"kill {kill}: {check.stdout}{check.stderr}"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(flat)],
                       check=True)
        data = flat.read_bytes()
        head = struct.unpack_from("<2Q", data, 0)
        assert head == (MAGIC, run)
        for pos in range(POSITIONS):
            at = (128 + pos * 128) * 512
            block = data[at:at + BLOCK]
            if block == bytes(BLOCK):
                assert pos not in floors, f"kill {kill}: flushed write {floors[pos]} lost"
                continue
            magic, r, i = struct.unpack_from("<3Q", block)
            assert magic == MAGIC and position(r, i) == pos and pattern_ok(block, r, i), \
                f"kill {kill}: position {pos} holds a torn or misplaced block"
            assert (r, i) >= floors.get(pos, (0, 0)), \
                f"kill {kill}: position {pos} went back from {floors[pos]} to {(r, i)}"
