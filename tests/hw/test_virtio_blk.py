"""virtio-blk on the real block layer, checked against real qemu-img/qemu-io."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from virtio_driver import Driver, make_machine

from pemu.block import open_drive
from pemu.hw.virtio import blk as b
from pemu.hw.virtio.blk import VirtioBlk
from pemu.hw.virtio.device import bit

MiB = 1 << 20


def need(tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")


@pytest.fixture
def raw_disk(tmp_path):
    path = tmp_path / "disk.raw"
    data = bytearray(os.urandom(4 * MiB))
    path.write_bytes(data)
    return path, data


def machine(opts, serial="pemu-disk-0"):
    backend = open_drive(opts)
    dev = VirtioBlk(backend, serial=serial)
    space, transport, irq = make_machine(dev)
    drv = Driver(space)
    (q,) = drv.bring_up(1)
    return drv, q, dev, backend


def request(drv, q, rtype, sector, out_data=b"", in_len=0, split_header=False,
            indirect=False):
    """Build a request the way Linux does; returns (status, used_len, in_addr)."""
    hdr = drv.ram.alloc(16)
    drv.space.write(hdr, struct.pack("<IIQ", rtype, 0, sector))
    bufs = [(hdr, 8, False), (hdr + 8, 8, False)] if split_header else [(hdr, 16, False)]
    if out_data:
        o = drv.ram.alloc(len(out_data))
        drv.space.write(o, out_data)
        bufs.append((o, len(out_data), False))
    in_addr = 0
    if in_len:
        in_addr = drv.ram.alloc(in_len)
        bufs.append((in_addr, in_len, True))
    st = drv.ram.alloc(1)
    drv.space.write(st, b"\xff")
    bufs.append((st, 1, True))
    head = q.add(bufs, indirect=indirect)
    q.kick()
    used = q.get_used()
    assert [u[0] for u in used] == [head]
    return drv.space.read(st, 1)[0], used[0][1], in_addr


def test_config_space(raw_disk):
    path, _ = raw_disk
    drv, _, dev, _ = machine({"file": str(path), "format": "raw"})
    assert drv.config(0, 4) | drv.config(4, 4) << 32 == 4 * MiB // 512  # capacity
    assert drv.config(0x0C, 4) == 254  # seg_max
    assert drv.config(0x14, 4) == 512  # blk_size
    assert drv.config(0x24, 4) > 0 and drv.config(0x28, 4) == 1  # discard limits
    f = drv.device_features()
    for feat in (b.VIRTIO_BLK_F_SEG_MAX, b.VIRTIO_BLK_F_BLK_SIZE, b.VIRTIO_BLK_F_FLUSH,
                 b.VIRTIO_BLK_F_DISCARD, b.VIRTIO_BLK_F_WRITE_ZEROES):
        assert f & bit(feat)
    assert not f & bit(b.VIRTIO_BLK_F_RO)


def test_read_write_flush_raw(raw_disk):
    path, data = raw_disk
    drv, q, _, backend = machine({"file": str(path), "format": "raw"})
    status, used, addr = request(drv, q, b.VIRTIO_BLK_T_IN, 8, in_len=4096, split_header=True)
    assert (status, used) == (b.VIRTIO_BLK_S_OK, 4097)
    assert drv.space.read(addr, 4096) == bytes(data[4096:8192])
    payload = os.urandom(3 * 512)
    status, used, _ = request(drv, q, b.VIRTIO_BLK_T_OUT, 100, out_data=payload, indirect=True)
    assert (status, used) == (b.VIRTIO_BLK_S_OK, 1)
    status, _, _ = request(drv, q, b.VIRTIO_BLK_T_FLUSH, 0)
    assert status == b.VIRTIO_BLK_S_OK
    backend.close()
    assert path.read_bytes()[100 * 512:103 * 512] == payload


def test_get_id(raw_disk):
    path, _ = raw_disk
    drv, q, _, _ = machine({"file": str(path), "format": "raw"}, serial="SN-1234")
    status, used, addr = request(drv, q, b.VIRTIO_BLK_T_GET_ID, 0, in_len=20)
    assert status == b.VIRTIO_BLK_S_OK and used == 21
    assert drv.space.read(addr, 20) == b"SN-1234".ljust(20, b"\0")


@pytest.mark.parametrize("rtype, sector, out, in_len, expected", [
    (b.VIRTIO_BLK_T_IN, 4 * MiB // 512 - 1, b"", 1024, b.VIRTIO_BLK_S_IOERR),  # past the end
    (b.VIRTIO_BLK_T_IN, 0, b"", 100, b.VIRTIO_BLK_S_IOERR),  # not sector sized
    (b.VIRTIO_BLK_T_OUT, 2**60, b"x" * 512, 0, b.VIRTIO_BLK_S_IOERR),  # huge sector
    (99, 0, b"", 0, b.VIRTIO_BLK_S_UNSUPP),  # unknown type
    (b.VIRTIO_BLK_T_DISCARD, 0, b"short", 0, b.VIRTIO_BLK_S_UNSUPP),
])
def test_bad_requests_fail_cleanly(raw_disk, rtype, sector, out, in_len, expected):
    path, data = raw_disk
    drv, q, _, backend = machine({"file": str(path), "format": "raw"})
    status, used, _ = request(drv, q, rtype, sector, out_data=out, in_len=in_len)
    assert status == expected and used == 1
    # The device still works afterwards.
    status, _, addr = request(drv, q, b.VIRTIO_BLK_T_IN, 0, in_len=512)
    assert status == b.VIRTIO_BLK_S_OK and drv.space.read(addr, 512) == bytes(data[:512])
    backend.close()
    assert path.read_bytes() == bytes(data)  # nothing was written


def test_short_header_is_ioerr(raw_disk):
    path, _ = raw_disk
    drv, q, _, _ = machine({"file": str(path), "format": "raw"})
    hdr, st = drv.ram.alloc(4), drv.ram.alloc(1)
    q.add([(hdr, 4, False), (st, 1, True)])
    q.kick()
    assert q.get_used()[0][1] == 1
    assert drv.space.read(st, 1)[0] == b.VIRTIO_BLK_S_IOERR


def test_read_only_drive(raw_disk):
    path, data = raw_disk
    drv, q, _, backend = machine({"file": str(path), "format": "raw", "read-only": "on"})
    assert drv.device_features() & bit(b.VIRTIO_BLK_F_RO)
    status, _, _ = request(drv, q, b.VIRTIO_BLK_T_OUT, 0, out_data=b"\0" * 512)
    assert status == b.VIRTIO_BLK_S_IOERR
    seg = struct.pack("<QII", 0, 8, 0)
    status, _, _ = request(drv, q, b.VIRTIO_BLK_T_WRITE_ZEROES, 0, out_data=seg)
    assert status == b.VIRTIO_BLK_S_IOERR
    backend.close()
    assert path.read_bytes() == bytes(data)


def test_qcow2_write_zeroes_discard_checked_by_qemu_io(tmp_path):
    need("qemu-img")
    need("qemu-io")
    img = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "8M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 2M", str(img)],
                   check=True, capture_output=True)
    drv, q, _, backend = machine({"file": str(img), "format": "qcow2", "discard": "unmap"})
    payload = bytes([0xA5]) * 4096
    assert request(drv, q, b.VIRTIO_BLK_T_OUT, 2048, out_data=payload)[0] == 0  # at 1 MiB
    seg = struct.pack("<QII", 0, 128, 0)  # 64 KiB at 0
    assert request(drv, q, b.VIRTIO_BLK_T_WRITE_ZEROES, 0, out_data=seg)[0] == 0
    seg = struct.pack("<QII", 4096, 1024, 0)  # 512 KiB at 2 MiB (unallocated region)
    assert request(drv, q, b.VIRTIO_BLK_T_DISCARD, 0, out_data=seg)[0] == 0
    bad = struct.pack("<QII", 0, 8, 1)  # unmap flag on discard is UNSUPP per spec
    assert request(drv, q, b.VIRTIO_BLK_T_DISCARD, 0, out_data=bad)[0] == b.VIRTIO_BLK_S_UNSUPP
    assert request(drv, q, b.VIRTIO_BLK_T_FLUSH, 0)[0] == 0
    backend.close()
    subprocess.run(["qemu-img", "check", str(img)], check=True, capture_output=True)
    for cmd in ("read -P 0 0 64k", "read -P 0x5a 64k 960k", "read -P 0xa5 1M 4k",
                "read -P 0x5a 1028k 1020k"):
        res = subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, str(img)],
                             capture_output=True, text=True)
        assert res.returncode == 0 and "Pattern verification failed" not in res.stdout, (
            cmd, res.stdout)


def test_backend_error_is_ioerr_not_crash(raw_disk):
    path, _ = raw_disk
    drv, q, dev, backend = machine({"file": str(path), "format": "raw"})

    def broken(*a, **k):
        raise OSError(5, "Input/output error")

    dev.backend.preadv = broken  # a failing disk (EIO from the host)
    status, used, _ = request(drv, q, b.VIRTIO_BLK_T_IN, 0, in_len=512)
    assert status == b.VIRTIO_BLK_S_IOERR and used == 1


def test_status_byte_sharing_a_descriptor_with_data(raw_disk):
    path, data = raw_disk
    drv, q, _, _ = machine({"file": str(path), "format": "raw"})
    hdr = drv.ram.alloc(16)
    drv.space.write(hdr, struct.pack("<IIQ", b.VIRTIO_BLK_T_IN, 0, 1))
    buf = drv.ram.alloc(513)
    q.add([(hdr, 16, False), (buf, 513, True)])  # no framing assumptions (spec 2.6.4)
    q.kick()
    assert q.get_used()[0][1] == 513
    assert drv.space.read(buf, 512) == bytes(data[512:1024])
    assert drv.space.read(buf + 512, 1) == b"\0"


def test_requests_run_off_the_kicking_thread(raw_disk):
    """The vCPU that kicks the queue does not do the I/O: the drive's I/O thread does,
    and completes the request (used ring + interrupt) from there."""
    import threading

    path, data = raw_disk
    drv, q, dev, backend = machine({"file": str(path), "format": "raw"})
    io_threads = []
    real_preadv = backend.preadv

    def preadv(offset, bufs):
        io_threads.append(threading.get_ident())
        return real_preadv(offset, bufs)

    backend.preadv = preadv
    status, used_len, in_addr = request(drv, q, b.VIRTIO_BLK_T_IN, 0, in_len=512)
    assert status == b.VIRTIO_BLK_S_OK and used_len == 513
    assert drv.space.read(in_addr, 512) == data[:512]
    assert io_threads and threading.get_ident() not in io_threads
