"""``pemu-img check`` against ``qemu-img check`` on qcow2 images whose metadata was
mutated (seeded): whatever qemu-img calls corrupt, pemu-img calls corrupt (status 2);
an image qemu-img cannot open pemu-img does not pass; and ``-r all`` fixes leaks and
wrong refcounts so that qemu-img then finds nothing."""

from __future__ import annotations

import contextlib
import io
import random
import shutil
import struct
import subprocess

import pytest

from pemu.block.img.main import main as pemu_img

MUTATIONS = 300
pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None or
                                shutil.which("qemu-io") is None,
                                reason="qemu-img and qemu-io are needed as the reference")


def _build(path: str) -> bytes:
    """4 KiB clusters, data in several L2 ranges, an internal snapshot, then a write that
    makes the active and snapshot tables differ (COPIED flags, shared refcounts)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096",
                    path, "1M"], check=True)
    writes = []
    for i, off in enumerate([0, 8192, 65536, 200000, 512000, 1000000]):
        writes += ["-c", f"write -P {i + 1} {off} 3000"]
    subprocess.run(["qemu-io", "-f", "qcow2", *writes, path], check=True, capture_output=True)
    subprocess.run(["qemu-img", "snapshot", "-c", "s1", path], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 9 8192 5000", path], check=True,
                   capture_output=True)
    with open(path, "rb") as f:
        return f.read()


def _metadata_regions(data: bytes) -> list[tuple[int, int]]:
    """Header, L1 table, L2 tables, refcount table and blocks, snapshot table."""
    cs = 1 << struct.unpack_from(">I", data, 20)[0]
    l1_size, l1_off, rt_off, rt_clusters, nb_snap, snap_off = struct.unpack_from(
        ">IQQIIQ", data, 36)
    regions = [(0, 104), (l1_off, l1_size * 8), (rt_off, 64)]
    for i in range(l1_size):
        l2 = struct.unpack_from(">Q", data, l1_off + 8 * i)[0] & 0x00FFFFFFFFFFFE00
        if l2:
            regions.append((l2, cs))
    for i in range(rt_clusters * cs // 8):
        block = struct.unpack_from(">Q", data, rt_off + 8 * i)[0]
        if block:
            regions.append((block, 64))
    if nb_snap:
        regions.append((snap_off, 64))
    return regions


def _mutate(data: bytes, regions, rng: random.Random) -> bytes:
    out = bytearray(data)
    start, length = rng.choice(regions)
    if rng.random() < 0.5:
        out[start + rng.randrange(length)] = rng.randrange(256)
        return bytes(out)
    pos = start + (rng.randrange(length) & ~7)
    old = struct.unpack_from(">Q", out, pos)[0]
    struct.pack_into(">Q", out, pos, rng.choice([
        rng.randrange(1 << 64),                                     # garbage
        rng.randrange(len(data) * 2) & ~511,                        # misaligned/outside
        rng.randrange(len(data) // 4096 + 4) * 4096 | rng.choice([0, 1 << 63]),  # overlap
        old ^ (1 << rng.randrange(64)),                             # one flipped bit
        0]))
    return bytes(out)


def _pemu_check(path: str, *options: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = pemu_img(["check", *options, path])  # an exception fails the test
    return status, out.getvalue() + err.getvalue()


def _qemu_check(path: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-img", "check", *options, path], capture_output=True,
                          text=True, timeout=30)


def test_check_finds_what_qemu_img_finds(tmp_path):
    original = _build(str(tmp_path / "base.qcow2"))
    regions = _metadata_regions(original)
    rng = random.Random(20261206)
    image = tmp_path / "mutated.qcow2"
    failures = []
    for i in range(MUTATIONS):
        image.write_bytes(_mutate(original, regions, rng))
        qemu = _qemu_check(str(image))
        status, text = _pemu_check(str(image))
        if (qemu.returncode == 2 and status != 2) or \
                (qemu.returncode == 1 and status not in (1, 2)) or \
                (qemu.returncode == 0 and status != 0):
            failures.append((i, qemu.returncode, status, qemu.stdout + qemu.stderr, text))
    assert not failures, failures[:3]


def test_repair_all_leaves_nothing_for_qemu_img(tmp_path):
    """Where pemu-img's repair says it is done (its own re-check is clean), qemu-img must
    agree; leaks and refcount mistakes on data clusters are always repaired."""
    original = _build(str(tmp_path / "base.qcow2"))
    regions = _metadata_regions(original)
    rng = random.Random(17)
    image = tmp_path / "mutated.qcow2"
    failures, repaired = [], 0
    for i in range(MUTATIONS // 2):
        mutated = _mutate(original, regions, rng)
        image.write_bytes(mutated)
        before = _qemu_check(str(image))
        if before.returncode not in (2, 3):
            continue
        status, text = _pemu_check(str(image), "-r", "all")
        after = _qemu_check(str(image))
        if status == 0 or before.returncode == 3:
            repaired += status == 0
            if after.returncode != 0:
                failures.append((i, before.stdout, text, after.stdout + after.stderr))
    assert not failures, failures[:3]
    assert repaired >= 5  # the mutations do produce repairable images


@pytest.mark.parametrize("entry", [0x2008, 1 << 62 | 0x2000, 0x7000_0000])
def test_repair_all_rebuilds_a_broken_refcount_table(tmp_path, entry):
    """A refcount table entry that is misaligned, has reserved bits or points past the
    end: check calls it corrupt, -r all writes a new refcount structure, qemu-img then
    finds the image clean and the guest data unchanged."""
    base = tmp_path / "base.qcow2"
    original = _build(str(base))
    rt_off = struct.unpack_from(">Q", original, 48)[0]
    broken = bytearray(original)
    struct.pack_into(">Q", broken, rt_off, entry)
    image = tmp_path / "broken.qcow2"
    image.write_bytes(broken)
    assert _qemu_check(str(image)).returncode == 2
    assert _pemu_check(str(image))[0] == 2
    status, text = _pemu_check(str(image), "-r", "all")
    assert status == 0, text
    after = _qemu_check(str(image))
    assert after.returncode == 0, after.stdout + after.stderr
    same = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(base),
                           str(image)], capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
