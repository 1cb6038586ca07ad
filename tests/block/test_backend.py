"""The device-facing BlockBackend over raw files: the API virtio-blk uses."""

from __future__ import annotations

import os
import threading

import pytest

from pemu.block import BlockError, open_drive


@pytest.fixture
def raw(tmp_path):
    path = tmp_path / "disk.img"
    with open(path, "wb") as f:
        f.truncate(4 << 20)
    return str(path)


def test_scatter_gather_round_trip(raw):
    be = open_drive({"file": raw, "format": "raw"})
    src = [bytearray(b"a" * 1000), bytearray(b"b" * 3096), bytearray(b"c" * 10)]
    be.pwritev(8192 - 1000, [memoryview(b) for b in src])
    dst = [bytearray(1000), bytearray(3096), bytearray(10)]
    be.preadv(8192 - 1000, [memoryview(b) for b in dst])
    assert dst == src
    assert be.pread(8192 - 1000, 4106) == b"".join(src)
    be.close()
    with open(raw, "rb") as f:
        f.seek(8192 - 1000)
        assert f.read(4106) == b"".join(src)


def test_bounds_and_read_only(raw):
    be = open_drive({"file": raw, "format": "raw", "read-only": "on"})
    assert be.read_only and be.size == 4 << 20
    with pytest.raises(BlockError, match="read-only"):
        be.pwrite(0, b"x")
    with pytest.raises(BlockError, match="beyond the end"):
        be.pread((4 << 20) - 1, 2)
    be.close()


def test_discard_punches_holes_and_write_zeroes(raw):
    be = open_drive({"file": raw, "format": "raw", "discard": "unmap"})
    be.pwrite(0, os.urandom(1 << 20))
    be.flush()
    used = os.stat(raw).st_blocks
    be.discard(0, 1 << 20)
    assert os.stat(raw).st_blocks < used
    assert be.pread(0, 1 << 20) == bytes(1 << 20)
    be.pwrite(0, b"\xff" * 8192)
    be.write_zeroes(100, 5000)
    assert be.pread(0, 8192) == b"\xff" * 100 + bytes(5000) + b"\xff" * 3092
    be.close()


def test_discard_ignored_by_default(raw):
    be = open_drive({"file": raw, "format": "raw"})
    be.pwrite(0, b"\x01" * 65536)
    be.discard(0, 65536)
    assert be.pread(0, 65536) == b"\x01" * 65536
    be.close()


def test_detect_zeroes_unmap_leaves_hole(raw):
    be = open_drive({"file": raw, "format": "raw", "detect-zeroes": "unmap", "discard": "unmap"})
    be.pwrite(0, os.urandom(1 << 20))
    be.flush()
    before = os.stat(raw).st_blocks
    be.pwrite(0, bytes(1 << 20))
    assert os.stat(raw).st_blocks < before
    assert be.pread(0, 1 << 20) == bytes(1 << 20)
    be.close()


def test_submit_runs_off_thread_in_order(raw):
    be = open_drive({"file": raw, "format": "raw", "aio": "threads"})
    seen = []
    main = threading.get_ident()

    def cb(result, exc):
        seen.append((threading.get_ident() != main, result, exc))

    for i in range(20):
        be.submit(lambda i=i: be.pwrite(i * 512, bytes([i]) * 512))
    be.submit(lambda: be.pread(0, 20 * 512), cb)
    be.submit(lambda: be.pread(4 << 20, 1), cb)
    be.drain()
    assert seen[0][0] and seen[0][1] == b"".join(bytes([i]) * 512 for i in range(20))
    assert isinstance(seen[1][2], BlockError)
    be.close()


def test_snapshot_on_leaves_image_untouched(raw, tmp_path):
    with open(raw, "r+b") as f:
        f.write(b"original")
    before = open(raw, "rb").read()
    be = open_drive({"file": raw, "format": "raw", "snapshot": "on"})
    be.pwrite(0, b"scribble")
    be.pwrite(3 << 20, b"more")
    assert be.pread(0, 8) == b"scribble"
    be.close()
    assert open(raw, "rb").read() == before


def test_blockdev_spelling_and_cache_modes(raw):
    for cache in ("writeback", "none", "writethrough", "directsync", "unsafe"):
        be = open_drive({"driver": "raw", "file.filename": raw, "cache": cache})
        be.pwrite(512, cache.encode())
        be.flush()
        assert be.pread(512, len(cache)) == cache.encode()
        be.close()
    be = open_drive({"driver": "file", "filename": raw, "cache.direct": "on",
                     "cache.no-flush": "off"})
    assert be.pread(512, 6) == b"unsafe"
    be.close()


def test_bad_options_are_clear_errors(raw):
    with pytest.raises(BlockError, match="cache"):
        open_drive({"file": raw, "cache": "bogus"})
    with pytest.raises(BlockError, match="Could not open"):
        open_drive({"file": raw + ".missing"})
    with pytest.raises(BlockError, match="Unknown driver"):
        open_drive({"file": raw, "format": "nosuch"})


def test_probed_raw_refuses_turning_into_qcow2(raw, capsys):
    be = open_drive({"file": raw})                 # no format: probed as raw
    assert "probing guessed raw" in capsys.readouterr().err
    be.pwrite(0, b"harmless boot sector")
    with pytest.raises(BlockError, match="sector 0"):
        be.pwrite(0, b"QFI\xfb\x00\x00\x00\x03")
    be.pwrite(4096, b"QFI\xfb")                    # elsewhere is fine
    be.close()
    be = open_drive({"file": raw, "format": "raw"})
    be.pwrite(0, b"QFI\xfb")                       # explicit raw: the guest's business
    be.close()
