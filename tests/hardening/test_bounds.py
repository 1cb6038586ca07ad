"""Bounded resources: what an image, an option, a client or a migration stream asks for
has a limit and a clear error.  (Virtqueue bounds: tests/hw/test_virtio_mmio.py and
test_malicious_guest.py; QMP message size and nesting: tests/monitor/test_qmp_fuzz.py;
GDB packets: test_gdb_packets.py; savevm sections: tests/migration/test_bad_input.py.)"""

from __future__ import annotations

import socket
import struct
import time
import tracemalloc

import pytest

from pemu.block import BlockError, open_drive, open_image
from pemu.block.qcow2.cache_sizes import MAX_CACHE_BYTES
from pemu.block.qcow2.create import create_qcow2
from pemu.monitor.listener import Listener, bind_tcp

# header fields (offset, struct format) of qcow2
L1_SIZE, REFTABLE_CLUSTERS, NB_SNAPSHOTS = (36, ">I"), (56, ">I"), (60, ">I")
ALLOCATION_BUDGET = 16 << 20  # opening a hostile image may not allocate more than this


def _patch(path, field, value) -> None:
    offset, fmt = field
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))


def _open_fails_small(path, message: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BlockError, match=message):
            open_image(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < ALLOCATION_BUDGET, f"opening allocated {peak} bytes"


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "t.qcow2"
    create_qcow2(str(path), 4 << 30)  # six L2 tables of 512 MiB each fit
    return path


@pytest.mark.parametrize("field, value, message", [
    (L1_SIZE, 0xFFFF_FFFF, "Active L1 table too large"),
    (REFTABLE_CLUSTERS, 0xFFFF_FFFF, "Reference count table too large"),
    (NB_SNAPSHOTS, 0xFFFF_FFFF, "Too many snapshots"),
])
def test_qcow2_metadata_sizes_are_bounded(image, field, value, message):
    _patch(image, field, value)
    _open_fails_small(image, message)


def test_qcow2_snapshot_extra_data_is_bounded(image, qemu_img):
    qemu_img("snapshot", "-c", "s1", str(image))
    with open(image, "rb") as f:
        header = f.read(72)
    table = struct.unpack_from(">Q", header, 64)[0]
    _patch(image, (table + 36, ">I"), 0x7FFF_FFFF)  # extra_data_size of snapshot 0
    _open_fails_small(image, "extra data too large")


def test_qcow2_cache_size_options(image):
    def opened(**opts):
        return open_drive({"file": str(image), "format": "qcow2", **opts})

    big = str(MAX_CACHE_BYTES + 1)
    for opts, message in [({"l2-cache-size": big}, "too big"),
                          ({"refcount-cache-size": "1T"}, "too big"),
                          ({"cache-size": "1M", "l2-cache-size": "2M"}, "may not exceed"),
                          ({"cache-size": "1M", "l2-cache-size": "512k",
                            "refcount-cache-size": "512k"}, "at the same time"),
                          ({"l2-cache-size": "lots"}, "invalid")]:
        with pytest.raises(BlockError, match=message):
            opened(**opts)
    backend = opened(**{"l2-cache-size": "128k", "refcount-cache-size": "64k"})
    node = backend.node
    assert node._l2_cache_tables == 2 and node.refcounts.cache_blocks == 2
    span = node.l2_size * node.cluster_size  # guest bytes one L2 table maps
    for i in range(6):  # touch six L2 tables: the cache keeps two
        backend.pwrite(i * span, b"x" * 512)
    assert len(node._l2_cache) <= 2
    assert [backend.pread(i * span, 1) for i in range(6)] == [b"x"] * 6
    backend.close()
    backend = opened(**{"cache-size": "1M"})
    assert backend.node._l2_cache_tables == 12 and backend.node.refcounts.cache_blocks == 4
    backend.close()


def test_monitor_listener_serves_a_bounded_number_of_clients():
    sock = bind_tcp("127.0.0.1", 0)
    sessions = []

    class Session:
        def __init__(self, conn) -> None:
            sessions.append(self)

        def start(self) -> None:
            pass

        def feed(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    listener = Listener(sock, Session, "bounded")
    clients = []
    try:
        for _ in range(Listener.MAX_CLIENTS + 5):
            clients.append(socket.create_connection(listener.address, timeout=5))
        deadline = time.monotonic() + 10
        while len(sessions) < Listener.MAX_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert len(sessions) == Listener.MAX_CLIENTS
        refused = 0
        for c in clients[Listener.MAX_CLIENTS:]:
            c.settimeout(5)
            refused += c.recv(1) == b""  # closed at once
        assert refused == 5
        # a client that leaves makes room for the next
        clients[0].close()
        time.sleep(0.3)
        clients.append(socket.create_connection(listener.address, timeout=5))
        deadline = time.monotonic() + 10
        while len(sessions) < Listener.MAX_CLIENTS + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(sessions) == Listener.MAX_CLIENTS + 1
    finally:
        for c in clients:
            c.close()
        listener.close()


def _stream(*parts: bytes) -> bytes:
    from pemu.migration.stream import MAGIC, STREAM_VERSION
    return MAGIC + struct.pack("<IH", STREAM_VERSION, 3) + b"abc" + b"".join(parts)


@pytest.mark.parametrize("name, data, message", [
    ("description", None, "description too long"),
    ("empty run", b"R\x03ram" + struct.pack("<QI", 0, 0), "RAM record of 0 pages"),
    ("huge run", b"R\x03ram" + struct.pack("<QI", 0, 0xFFFF_FFFF), "RAM record of"),
    ("device", b"D\x03dev" + struct.pack("<II", 0, 0xFFFF_FFFF), "device record of"),
])
def test_migration_stream_lengths_are_bounded(name, data, message):
    """A lying length in the live-migration stream is refused before anything of that
    size is read or allocated (the reader reads through a socket)."""
    from pemu.migration.stream import MAGIC, STREAM_VERSION, StreamError, StreamReader
    raw = (MAGIC + struct.pack("<IH", STREAM_VERSION, 0xFFFF) if data is None
           else _stream(data))
    asked: list[int] = []
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        asked.append(n)
        chunk = raw[pos:pos + n]
        pos += len(chunk)
        return chunk

    reader = StreamReader(read)
    tracemalloc.start()
    try:
        with pytest.raises(StreamError, match=message):
            reader.header()
            reader.record()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert max(asked) < 1 << 16 and peak < 1 << 20, (asked, peak)
