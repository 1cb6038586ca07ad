"""Crash consistency: a writer killed with SIGKILL at random moments leaves an image
that qemu-img check finds free of corruption (leaks allowed), with every flushed
write present."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pemu.block import open_image
from pemu.block.qcow2 import create_qcow2
from pemu.block.qcow2.snapshots import create_snapshot

WRITER = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _untouched_ranges_match(image: bytes, state: bytes, log: str) -> None:
    touched = bytearray(len(state))
    for line in log.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue   # a log line cut short by the kill
        off, n = int(parts[0]), int(parts[1])
        touched[off:off + n] = b"\x01" * n
    for start in range(0, len(state), 4096):
        end = start + 4096
        if not any(touched[start:end]) and image[start:end] != state[start:end]:
            raise AssertionError(f"flushed data lost at offset {start}")
        if any(touched[start:end]):
            for i in range(start, end):
                if not touched[i] and image[i] != state[i]:
                    raise AssertionError(f"flushed data lost at offset {i}")


@pytest.mark.slow
@pytest.mark.parametrize("cluster_size,refcount_bits,with_snapshot", [
    (65536, 16, False), (4096, 2, False), (16384, 16, True)])
def test_sigkill_leaves_consistent_image(tmp_path, qemu_img, cluster_size, refcount_bits,
                                         with_snapshot):
    size = 8 << 20
    img = str(tmp_path / "crash.qcow2")
    create_qcow2(img, size, cluster_size=cluster_size, refcount_bits=refcount_bits)
    (tmp_path / "state.bin").write_bytes(bytes(size))
    snap_content = None
    if with_snapshot:
        # every write then copies clusters (and L2 tables) shared with the snapshot
        node = open_image(img)
        node.write(0, random.Random(1).randbytes(size))
        create_snapshot(node, "keep")
        node.close()
        ro = open_image(img, read_only=True)
        snap_content = ro.read(0, size)
        ro.close()
    rng = random.Random(cluster_size)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    kills = 12
    for i in range(kills):
        (tmp_path / "ops.log").write_bytes(b"")
        p = subprocess.Popen([sys.executable, str(WRITER), img, str(tmp_path), str(i)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        assert p.stdout.readline() == b"ready\n", p.stderr.read().decode()
        time.sleep(rng.uniform(0.02, 0.4))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL, p.stderr.read().decode()
        chk = qemu_img("check", img, check=False)
        assert chk.returncode in (0, 3), f"kill {i}: {chk.stdout}{chk.stderr}"
        flat = tmp_path / "flat.raw"
        qemu_img("convert", "-O", "raw", img, str(flat))
        _untouched_ranges_match(flat.read_bytes(), (tmp_path / "state.bin").read_bytes(),
                                (tmp_path / "ops.log").read_text())
    if snap_content is not None:
        kept = tmp_path / "kept.raw"
        qemu_img("convert", "-l", "snapshot.name=keep", "-O", "raw", img, str(kept))
        assert kept.read_bytes() == snap_content, "the snapshot changed"
