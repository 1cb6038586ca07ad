"""Malformed images from a fuzzer: pemu answers each with a BlockError (a clear
message, never another exception) and never writes to an image it found broken."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pemu.block import BlockError, open_image
from pemu.block.img.main import main as pemu_img_main
from pemu.block.luks import create_luks
from pemu.block.qcow2 import create_qcow2
from pemu.block.qcow2.check import check_image
from pemu.block.qcow2.snapshots import create_snapshot

SIZE = 1 << 20
CS = 4096


def _build_qcow2(path: str) -> dict[str, list[tuple[int, int, int]]]:
    """A small image using every metadata structure; returns the byte regions
    (offset, length, field width) worth mutating, by kind."""
    create_qcow2(path, SIZE, cluster_size=CS, refcount_bits=16)
    node = open_image(path)
    node.write(0, b"A" * 20000)
    node.write_compressed(8 * CS, b"compressible " * 315 + b"x")
    assert node.l2_table(node.l1[0] & ((1 << 56) - 512))[8] & (1 << 62)
    create_snapshot(node, "snap", date=0)
    node.write(5 * CS, b"B" * CS)
    node.write(200 * CS, b"C" * 100)
    regions: dict[str, list[tuple[int, int, int]]] = {
        "header": [(0, 112, 0)],
        "l1": [(node.h.l1_table_offset, len(node.l1) * 8, 8)],
        "l2": [(e & ((1 << 56) - 512), CS, 8) for e in node.l1 if e & ((1 << 56) - 512)],
        "reftable": [(node.refcounts.table_offset, 64, 8)],
        "refblock": [(o, 256, 2) for o in node.refcounts.table if o],
        "snapshots": [(node.h.snapshots_offset, node.snapshot_table_bytes, 0)],
        "snapshot_l1": [(s.l1_table_offset, s.l1_size * 8, 8) for s in node.snapshots],
        # the compressed cluster's descriptor (guest cluster 8) in the active L2 table
        "compressed": [((node.l1[0] & ((1 << 56) - 512)) + 8 * 8, 8, 8)],
        "extensions": [(112, 400, 1)],
    }
    node.close()
    return regions


_HEADER_FIELDS = [(4, 4), (8, 8), (16, 4), (20, 4), (24, 8), (32, 4), (36, 4), (40, 8),
                  (48, 8), (56, 4), (60, 4), (64, 8), (72, 8), (80, 8), (88, 8), (96, 4),
                  (100, 4), (104, 1)]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fuzz") / "template.qcow2")
    regions = _build_qcow2(path)
    with open(path, "rb") as f:
        return f.read(), regions


values = st.one_of(
    st.integers(0, 2**64 - 1), st.integers(0, 64), st.sampled_from([0, 1, 2**63, 2**62 + 1]),
    st.integers(0, 64).map(lambda n: n * CS), st.integers(0, 64).map(lambda n: n * CS + 1),
    st.just(2**64 - 1), st.just(2**32 - 1))


def _mutate(data: bytes, regions, kind: str, pick: int, value: int, flip: bool) -> bytes:
    buf = bytearray(data)
    if kind == "header":
        off, width = _HEADER_FIELDS[pick % len(_HEADER_FIELDS)]
    else:
        base, length, width = regions[kind][pick % len(regions[kind])]
        width = width or 8
        slots = max(1, length // width)
        off = base + (pick // 7 % slots) * width
    if flip:
        buf[off + pick % width] ^= 1 << (value % 8)
    else:
        buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "big")
    return bytes(buf)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _exercise_read_only(path) -> None:
    try:
        node = open_image(str(path), read_only=True)
    except BlockError:
        return
    try:
        for off in range(0, node.size, 64 * CS):
            node.read(off, min(64 * CS, node.size - off))
        pos = 0
        while pos < node.size:
            pos += node.block_status(pos, node.size - pos).length
        check_image(node)
    except BlockError:
        pass
    finally:
        node.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["header", "l1", "l2", "reftable", "refblock", "snapshots",
                             "snapshot_l1", "compressed", "extensions"]),
       pick=st.integers(0, 10**6), value=values, flip=st.booleans())
def test_malformed_qcow2(tmp_path_factory, template, kind, pick, value, flip):
    data, regions = template
    path = tmp_path_factory.mktemp("m") / "bad.qcow2"
    path.write_bytes(_mutate(data, regions, kind, pick, value, flip))
    before = _digest(path)
    _exercise_read_only(path)
    assert _digest(path) == before, "a read-only open wrote to the image"
    # read-write: an operation that fails must not have changed the file
    try:
        node = open_image(str(path))
    except BlockError:
        assert _digest(path) == before
        return
    try:
        where = pick % node.size // CS * CS if node.size >= CS else 0
        for op in (lambda: node.read(0, node.size),
                   lambda: node.write(where, b"w" * min(CS, node.size))):
            snapshot = _digest(path)
            try:
                op()
            except BlockError:
                assert _digest(path) == snapshot, "a failing request wrote to the image"
                return
    finally:
        try:
            node.close()
        except BlockError:
            pass


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(pick=st.integers(0, 10**6), value=values)
def test_malformed_qcow2_cli_messages(tmp_path_factory, template, capsys, pick, value):
    data, regions = template
    path = tmp_path_factory.mktemp("c") / "bad.qcow2"
    path.write_bytes(_mutate(data, regions, "header", pick, value, False))
    for cmd in (["info", str(path)], ["check", str(path)], ["map", str(path)]):
        capsys.readouterr()
        status = pemu_img_main(cmd)
        out, err = capsys.readouterr()
        assert status in (0, 1, 2, 3), (cmd, status, err)
        if status == 1:
            assert err.startswith("pemu-img: ") and "Traceback" not in err


@pytest.fixture(scope="module")
def luks_template(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("lk") / "t.luks")
    create_luks(path, 64 << 10, {"key-secret": "k", "iter-time": "1"}, {"k": b"pw"})
    with open(path, "rb") as f:
        return f.read()


_LUKS_FIELDS = [(6, 2), (8, 32), (40, 32), (72, 32), (104, 4), (108, 4), (112, 20),
                (132, 32), (164, 4), (168, 40)] + \
    [(208 + 48 * i + o, w) for i in range(8) for o, w in ((0, 4), (4, 4), (40, 4), (44, 4))]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(_LUKS_FIELDS), value=values, flip=st.booleans())
def test_malformed_luks_header(tmp_path_factory, luks_template, field, value, flip):
    off, width = field
    buf = bytearray(luks_template)
    if flip:
        buf[off] ^= 1 << (value % 8)
    else:
        buf[off:off + width] = (value % (1 << (8 * width))).to_bytes(width, "big")
    path = tmp_path_factory.mktemp("l") / "bad.luks"
    path.write_bytes(bytes(buf))
    before = _digest(path)
    try:
        node = open_image(str(path), secrets={"k": b"pw"}, options={"key-secret": "k"})
    except BlockError:
        pass
    else:
        node.read(0, node.size)
        node.close()
    assert _digest(path) == before


def test_corrupt_bit_opens_read_only_with_message(tmp_path, capsys):
    path = tmp_path / "c.qcow2"
    create_qcow2(str(path), SIZE)
    raw = bytearray(path.read_bytes())
    features = struct.unpack_from(">Q", raw, 72)[0] | 2
    struct.pack_into(">Q", raw, 72, features)
    path.write_bytes(bytes(raw))
    node = open_image(str(path))
    assert node.read_only
    assert "corrupt" in capsys.readouterr().err
    with pytest.raises(BlockError, match="read-only"):
        node.write(0, b"x")
    node.close()
    assert path.read_bytes() == bytes(raw)
