"""blkdebug fault injection and throttling, through open_drive."""

from __future__ import annotations

import errno

import pytest

from pemu.block import BlockError, open_drive
from pemu.block.throttle import Throttle


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "d.img"
    p.write_bytes(bytes(1 << 20))
    return str(p)


def test_blkdebug_config_file_injects_errors(tmp_path, img):
    conf = tmp_path / "blkdebug.conf"
    conf.write_text('[inject-error]\nevent = "write_aio"\nerrno = "28"\nsector = "8"\n\n'
                    '[inject-error]\nevent = "read_aio"\nonce = "on"\n')
    be = open_drive({"file": f"blkdebug:{conf}:{img}", "format": "raw"})
    be.pwrite(0, b"a" * 4096)                     # sectors 0-7: not matched
    with pytest.raises(BlockError) as e:
        be.pwrite(4096, b"b" * 512)               # sector 8
    assert e.value.errno == errno.ENOSPC
    with pytest.raises(BlockError) as e:
        be.pread(0, 512)
    assert e.value.errno == errno.EIO
    assert be.pread(0, 4096) == b"a" * 4096       # once=on: second read succeeds
    assert be.pread(4096, 512) == bytes(512)      # the failed write never landed
    be.close()


def test_blkdebug_inline_blockdev_options(img):
    be = open_drive({"driver": "blkdebug", "image.filename": img,
                     "inject-error.0.event": "flush_to_disk",
                     "inject-error.0.errno": "5"})
    be.pwrite(0, b"x")
    with pytest.raises(BlockError, match="injected"):
        be.flush()
    be.node.rules.clear()
    be.close()


def test_blkdebug_bad_event_is_clear(img):
    with pytest.raises(BlockError, match="unsupported event"):
        open_drive({"driver": "blkdebug", "image.filename": img,
                    "inject-error.0.event": "nonsense"})


def test_throttle_waits_by_the_limits():
    now = [0.0]
    slept = []

    def sleep(t):
        slept.append(t)
        now[0] += t

    th = Throttle.from_options({"throttling.iops-total": "10"},
                               clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        th.account(False, 4096)    # within the 1-second burst of 10 iops
    assert slept == []
    th.account(False, 4096)        # the 11th must wait for one token: 0.1 s
    assert slept == [pytest.approx(0.1)]
    slept.clear()
    bw = Throttle.from_options({"throttling.bps-write": "1M"},
                               clock=lambda: now[0], sleep=sleep)
    bw.account(True, 3 << 20)      # an oversized request passes an idle bucket...
    bw.account(False, 1 << 20)     # reads are not limited by bps-write
    assert slept == []
    bw.account(True, 4096)         # ...and the next write waits until 1 MiB is left
    assert sum(slept) == pytest.approx(2.0, rel=0.01)


def test_throttled_drive_still_correct(img):
    be = open_drive({"file": img, "format": "raw", "throttling.iops-total": "1000",
                     "throttling.bps-total": "100M"})
    be.pwrite(0, b"z" * 8192)
    assert be.pread(0, 8192) == b"z" * 8192
    be.close()
    with pytest.raises(BlockError, match="throttling"):
        open_drive({"file": img, "throttling.iops-total": "lots"})
