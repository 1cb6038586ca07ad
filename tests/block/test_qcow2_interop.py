"""qcow2 round trips with Debian's real qemu-img: what qemu-img makes, pemu reads
identically; what pemu makes, qemu-img checks clean and compares equal."""

from __future__ import annotations

import random

import pytest

from pemu.block import open_image
from pemu.block.qcow2 import create_qcow2
from pemu.block.qcow2.snapshots import (
    apply_snapshot,
    create_snapshot,
    delete_snapshot,
    read_vm_state,
)

from .conftest import pattern_data

SIZE = 6 << 20


@pytest.fixture
def source(tmp_path):
    data = pattern_data(SIZE, seed=7)
    path = tmp_path / "src.raw"
    path.write_bytes(data)
    return str(path), data


def read_all(path: str, fmt: str | None = None) -> bytes:
    node = open_image(path, fmt=fmt, read_only=True)
    try:
        return node.read(0, node.size)
    finally:
        node.close()


@pytest.mark.parametrize("opts", [
    "cluster_size=512", "cluster_size=4096", "cluster_size=65536", "cluster_size=2M",
    "compat=0.10", "extended_l2=on", "refcount_bits=1", "refcount_bits=64",
])
@pytest.mark.parametrize("compress", [False, True])
def test_qemu_made_images_read_identically(tmp_path, source, qemu_img, opts, compress):
    src, data = source
    out = str(tmp_path / "q.qcow2")
    args = ["convert", "-O", "qcow2", "-o", opts] + (["-c"] if compress else []) + [src, out]
    qemu_img(*args)
    assert read_all(out) == data


@pytest.mark.parametrize("cluster", ["4096", "65536"])
def test_qemu_zstd_compressed_reads(tmp_path, source, qemu_img, cluster):
    src, data = source
    out = str(tmp_path / "z.qcow2")
    qemu_img("convert", "-c", "-O", "qcow2", "-o",
             f"compression_type=zstd,cluster_size={cluster}", src, out)
    assert read_all(out) == data


def test_qemu_backing_chain_and_zero_clusters(tmp_path, qemu_img, qemu_io):
    base = str(tmp_path / "base.raw")
    mid = str(tmp_path / "mid.qcow2")
    top = str(tmp_path / "top.qcow2")
    qemu_img("create", "-f", "raw", base, "4M")
    qemu_io(base, "write -P 0x11 0 4M", fmt="raw")
    qemu_img("create", "-f", "qcow2", "-b", base, "-F", "raw", mid)
    qemu_io(mid, "write -P 0x22 1M 1M", "write -z 3M 64k")
    qemu_img("create", "-f", "qcow2", "-b", mid, "-F", "qcow2", top, "8M")
    qemu_io(top, "write -P 0x33 1536k 4k", "write -z 0 64k", "discard 2M 64k")
    expect = bytearray(b"\x11" * (4 << 20) + bytes(4 << 20))
    expect[1 << 20:2 << 20] = b"\x22" * (1 << 20)
    expect[3 << 20:(3 << 20) + 65536] = bytes(65536)
    expect[1536 << 10:(1536 << 10) + 4096] = b"\x33" * 4096
    expect[0:65536] = bytes(65536)
    got = read_all(top)
    # qemu's discard of a cluster over a backing file makes it read as zero
    disc = qemu_img("map", "--output=json", top, json_out=True)
    assert any(e["start"] <= 2 << 20 < e["start"] + e["length"] for e in disc)
    compare = qemu_img("convert", "-O", "raw", top, str(tmp_path / "flat.raw"))
    assert compare.returncode == 0
    assert got == (tmp_path / "flat.raw").read_bytes()
    assert got[:2 << 20] == bytes(expect[:2 << 20])


def test_qemu_internal_snapshots_read_back(tmp_path, qemu_img, qemu_io):
    img = str(tmp_path / "s.qcow2")
    qemu_img("create", "-f", "qcow2", img, "4M")
    qemu_io(img, "write -P 1 0 2M")
    qemu_img("snapshot", "-c", "first", img)
    qemu_io(img, "write -P 2 1M 2M")
    node = open_image(img, read_only=True)
    assert [s.name for s in node.snapshots] == ["first"]
    assert node.read(0, 4 << 20) == b"\x01" * (1 << 20) + b"\x02" * (2 << 20) + \
        bytes(1 << 20)
    node.close()
    node = open_image(img)
    apply_snapshot(node, "first")
    assert node.read(0, 4 << 20) == b"\x01" * (2 << 20) + bytes(2 << 20)
    node.close()
    qemu_img("check", img)


def random_workload(node, size: int, seed: int, ops: int = 80) -> bytearray:
    """Random writes, zero writes and discards; returns the expected content."""
    r = random.Random(seed)
    ref = bytearray(node.read(0, size))
    for i in range(ops):
        off = r.randrange(size)
        n = min(r.randrange(1, 300000), size - off)
        kind = i % 6
        if kind == 4:
            node.write_zeroes(off, n)
            ref[off:off + n] = bytes(n)
        elif kind == 5:
            node.discard(off, n)
            ref[:] = node.read(0, size)   # discard granularity is the cluster
        else:
            d = r.randbytes(n) if kind < 2 else bytes([r.randrange(1, 256)]) * n
            node.write(off, d)
            ref[off:off + n] = d
    return ref


# every refcount width and every cluster-size extreme, paired to keep the run short
@pytest.mark.parametrize("cluster_size,refcount_bits", [
    (512, 1), (512, 64), (4096, 2), (4096, 32), (65536, 4), (65536, 16), (2 << 20, 8),
    (2 << 20, 1), (1024, 16), (8192, 8),
])
def test_pemu_made_images_pass_qemu_check(tmp_path, qemu_img, cluster_size, refcount_bits):
    img = str(tmp_path / "p.qcow2")
    size = 24 << 20
    create_qcow2(img, size, cluster_size=cluster_size, refcount_bits=refcount_bits)
    node = open_image(img)
    ref = random_workload(node, size, seed=cluster_size + refcount_bits, ops=40)
    assert node.read(0, size) == ref
    node.close()
    qemu_img("check", img)
    raw = tmp_path / "ref.raw"
    raw.write_bytes(ref)
    qemu_img("compare", "-f", "qcow2", "-F", "raw", img, str(raw))


def test_pemu_writes_over_qemu_backing_chain(tmp_path, qemu_img, qemu_io):
    base = str(tmp_path / "b.qcow2")
    top = str(tmp_path / "t.qcow2")
    qemu_img("create", "-f", "qcow2", base, "8M")
    qemu_io(base, "write -P 5 0 8M")
    create_qcow2(top, 8 << 20, backing_file="b.qcow2", backing_fmt="qcow2")
    node = open_image(top)
    node.write(100, b"abc")            # partial cluster: copy-on-write from the base
    node.write_zeroes(1 << 20, 1 << 20)
    node.discard(3 << 20, 1 << 20)     # with a backing file discard must read as zero
    expect = bytearray(b"\x05" * (8 << 20))
    expect[100:103] = b"abc"
    expect[1 << 20:2 << 20] = bytes(1 << 20)
    expect[3 << 20:4 << 20] = bytes(1 << 20)
    assert node.read(0, 8 << 20) == expect
    node.close()
    qemu_img("check", top)
    flat = tmp_path / "flat.raw"
    flat.write_bytes(expect)
    qemu_img("compare", top, str(flat))


def test_pemu_snapshots_pass_qemu_check(tmp_path, qemu_img):
    img = str(tmp_path / "s.qcow2")
    create_qcow2(img, 8 << 20, cluster_size=4096)
    node = open_image(img)
    node.write(0, b"\x01" * (2 << 20))
    create_snapshot(node, "one")
    node.write(1 << 20, b"\x02" * (2 << 20))
    create_snapshot(node, "two")
    node.write(0, b"\x03" * 5000)
    node.close()
    qemu_img("check", img)
    lst = qemu_img("snapshot", "-l", img).stdout
    assert "one" in lst and "two" in lst
    node = open_image(img)
    apply_snapshot(node, "one")
    assert node.read(0, 3 << 20) == b"\x01" * (2 << 20) + bytes(1 << 20)
    delete_snapshot(node, "one")
    node.close()
    qemu_img("check", img)
    flat = tmp_path / "one.raw"
    flat.write_bytes(b"\x01" * (2 << 20) + bytes(6 << 20))
    qemu_img("compare", img, str(flat))
    # qemu can still go back to "two", which pemu's writes must not have disturbed
    qemu_img("snapshot", "-a", "two", img)
    flat.write_bytes(b"\x01" * (1 << 20) + b"\x02" * (2 << 20) + bytes(5 << 20))
    qemu_img("compare", img, str(flat))
    qemu_img("check", img)


def test_qemu_extended_l2_subclusters_over_backing(tmp_path, qemu_img, qemu_io):
    base = str(tmp_path / "base.qcow2")
    top = str(tmp_path / "top.qcow2")
    qemu_img("create", "-f", "qcow2", base, "4M")
    qemu_io(base, "write -P 0x61 0 4M")
    qemu_img("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", "-b", base,
             "-F", "qcow2", top)
    # partial clusters: some subclusters allocated, some zero, the rest from the base
    qemu_io(top, "write -P 0x62 2k 4k", "write -z 64k 8k", "write -P 0x63 200k 70k",
            "discard 1M 64k")
    flat = tmp_path / "flat.raw"
    qemu_img("convert", "-O", "raw", top, str(flat))
    assert read_all(top) == flat.read_bytes()


def test_dirty_lazy_refcount_image_is_repaired_on_open(tmp_path, qemu_img):
    img = str(tmp_path / "lazy.qcow2")
    create_qcow2(img, 4 << 20, lazy_refcounts=True)
    node = open_image(img)
    node.write(0, b"d" * 100000)
    assert node.h.incompatible_features & 1       # dirty while open for writing
    leaked = node.refcounts.alloc(2)              # simulate stale refcounts
    node.file.write(leaked, bytes(2 * 65536))
    node.file.close()                              # "crash": no clean close
    node.file = None
    assert qemu_img("check", img, check=False).returncode in (0, 3)
    node = open_image(img)                         # writable open repairs and cleans
    assert not node.h.incompatible_features & 1
    assert node.read(0, 100000) == b"d" * 100000
    node.close()
    assert qemu_img("check", img).returncode == 0


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
def test_pemu_rewrites_qemu_compressed_snapshotted_image(tmp_path, source, qemu_img, ctype):
    """Writes over compressed clusters shared with a snapshot: copy-on-write must
    decompress, and every refcount must stay right."""
    src, data = source
    img = str(tmp_path / "c.qcow2")
    qemu_img("convert", "-c", "-O", "qcow2", "-o", f"compression_type={ctype}", src, img)
    qemu_img("snapshot", "-c", "before", img)
    node = open_image(img)
    ref = random_workload(node, SIZE, seed=99, ops=30)
    node.close()
    qemu_img("check", img)
    flat = tmp_path / "now.raw"
    flat.write_bytes(ref)
    qemu_img("compare", img, str(flat))
    qemu_img("snapshot", "-a", "before", img)
    qemu_img("compare", img, src)
    qemu_img("check", img)


def test_pemu_writes_v2_image(tmp_path, source, qemu_img):
    """qcow2 v2 has no zero flag: zeroing and discard must still read back as zero."""
    src, data = source
    img = str(tmp_path / "v2.qcow2")
    qemu_img("convert", "-O", "qcow2", "-o", "compat=0.10", src, img)
    node = open_image(img)
    ref = random_workload(node, SIZE, seed=5, ops=30)
    node.close()
    qemu_img("check", img)
    flat = tmp_path / "v2.raw"
    flat.write_bytes(ref)
    qemu_img("compare", img, str(flat))
    info = qemu_img("info", "--output=json", img, json_out=True)
    assert info["format-specific"]["data"]["compat"] == "0.10"


def test_vm_state_area_is_where_qemu_looks(tmp_path, qemu_img):
    """A snapshot with machine state: qemu-img lists its VM SIZE, check is clean, the
    state reads back without touching the active image, and deleting frees it."""
    img = str(tmp_path / "vm.qcow2")
    create_qcow2(img, 8 << 20, cluster_size=65536)
    node = open_image(img)
    node.write(0, b"\x01" * 70000)
    state = bytes(range(256)) * 4000 + b"tail"  # ~1 MiB, not cluster-aligned
    create_snapshot(node, "vm1", vm_state=state)
    node.write(0, b"\x02" * 100)
    assert read_vm_state(node, "vm1") == state
    assert node.read(0, 1) == b"\x02"
    node.close()
    qemu_img("check", img)
    listing = qemu_img("snapshot", "-l", img).stdout
    line = next(x for x in listing.splitlines() if " vm1 " in x)
    assert "0.977 MiB" in line  # 1024004 bytes, as qemu-img prints it
    node = open_image(img)
    apply_snapshot(node, "vm1")
    assert node.read(0, 2) == b"\x01\x01"
    assert read_vm_state(node, "vm1") == state
    node.close()
    qemu_img("check", img)
    node = open_image(img)
    delete_snapshot(node, "vm1")
    node.close()
    assert "No errors" in qemu_img("check", img).stdout
