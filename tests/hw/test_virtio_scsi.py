"""virtio-scsi-pci with scsi-hd and scsi-cd units, driven through its request and
control queues by the test virtio-pci driver (tests/hw/pci_driver.py)."""

from __future__ import annotations

import os
import struct

import pytest
from pci_driver import RAM_BASE, RAM_SIZE, PCIMachine, VirtioPCIDriver

from pemu.block import open_drive
from pemu.hw.pci import config as C
from pemu.hw.scsi.disk import ScsiDisk
from pemu.hw.virtio import pci as vp
from pemu.hw.virtio import scsi as vs
from pemu.hw.virtio.device import STATUS_DEVICE_NEEDS_RESET
from pemu.hw.virtio.pci import VirtioPCI

SLOT = 3
BLOCKS = 1024
RESP = vs.RESP.size


class Rig:
    def __init__(self, tmp_path) -> None:
        self.m = PCIMachine()
        self.dev = vs.VirtioSCSI(id="scsi0")
        self.data = os.urandom(BLOCKS * 512)
        self.path = tmp_path / "disk.qcow2.raw"
        self.path.write_bytes(self.data)
        self.backend = open_drive({"file": str(self.path), "format": "raw"})
        self.dev.scsi_bus.attach(ScsiDisk(self.backend, serial="vs-disk"), 0, 1, 0)
        self.fn = VirtioPCI(self.m.space, self.dev, id="scsi0")
        self.m.host.root_bus.plug(self.fn, SLOT << 3)
        self.drv = VirtioPCIDriver(self.m, SLOT << 3)
        self.ctrl, self.event, self.req = self.drv.bring_up(3)

    def settle(self) -> None:
        self.backend.drain()

    def command(self, cdb: bytes, target: int = 1, lun: int = 0, out: bytes = b"",
                in_len: int = 0, lun_bytes: bytes | None = None, resp_len: int = RESP):
        ram, space = self.m.ram, self.m.space
        lun_field = lun_bytes if lun_bytes is not None else \
            bytes([1, target, 0x40 | lun >> 8, lun & 0xFF]) + bytes(4)
        head = ram.alloc(vs.REQ_HEADER)
        space.write(head, lun_field + struct.pack("<QBBB", 7, 0, 0, 0)
                    + cdb.ljust(vs.CDB_SIZE, b"\0"))
        bufs = [(head, vs.REQ_HEADER, False)]
        if out:
            a = ram.alloc(len(out))
            space.write(a, out)
            bufs.append((a, len(out), False))
        resp = ram.alloc(resp_len)
        bufs.append((resp, resp_len, True))
        data = ram.alloc(in_len) if in_len else 0
        if in_len:
            bufs.append((data, in_len, True))
        head_id = self.req.add(bufs)
        self.req.kick()
        self.settle()
        used = dict(self.req.get_used())
        raw = space.read(resp, min(resp_len, RESP))
        return used[head_id], raw, space.read(data, in_len) if in_len else b""


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    r.backend.close()


def response(raw: bytes):
    sense_len, resid, _qual, status, resp, sense = vs.RESP.unpack(raw)
    return resp, status, resid, sense[:sense_len]


def test_pci_identity_and_config(rig):
    cfg = rig.drv.cfg
    assert (cfg.r(C.VENDOR_ID, 2), cfg.r(C.DEVICE_ID, 2)) == (0x1AF4, 0x1048)
    assert cfg.r(C.REVISION_ID, 4) >> 8 == 0x010000
    space, base = rig.m.space, rig.drv.device_cfg
    raw = b"".join(space.load(base + off, 4).to_bytes(4, "little") for off in range(0, 36, 4))
    num_queues, seg_max, _, _, _, sense, cdb = struct.unpack_from("<7I", raw)
    max_channel, max_target, max_lun = struct.unpack_from("<HHI", raw, 28)
    assert (num_queues, sense, cdb) == (1, 96, 32) and seg_max > 0
    assert (max_channel, max_target, max_lun) == (0, 255, 16383)
    assert rig.drv.r(vp.NUM_QUEUES, 2) == 3


def test_inquiry_read_and_write_through_the_request_queue(rig):
    written, raw, inq = rig.command(bytes([0x12, 0, 0, 0, 36, 0]), in_len=36)
    resp, status, resid, _ = response(raw)
    assert (resp, status, resid) == (vs.S_OK, 0, 0) and written == RESP + 36
    assert inq[16:29] == b"QEMU HARDDISK"
    _, raw, data = rig.command(bytes([0x28, 0, 0, 0, 0, 5, 0, 0, 2, 0]), in_len=4096)
    resp, status, resid, _ = response(raw)
    assert status == 0 and resid == 4096 - 1024
    assert data[:1024] == rig.data[5 * 512:7 * 512]
    payload = os.urandom(1024)
    _, raw, _ = rig.command(bytes([0x2A, 0, 0, 0, 0, 9, 0, 0, 2, 0]), out=payload)
    assert response(raw)[:2] == (vs.S_OK, 0)
    assert rig.path.read_bytes()[9 * 512:11 * 512] == payload


def test_check_condition_carries_autosense(rig):
    _, raw, _ = rig.command(bytes([0x28, 0, 0, 0, 0x10, 0, 0, 0, 1, 0]), in_len=512)
    resp, status, resid, sense = response(raw)
    assert resp == vs.S_OK and status == 0x02 and resid == 512
    assert sense[2] == 0x05 and sense[12] == 0x21


def test_report_luns_and_absent_targets(rig):
    _, raw, data = rig.command(bytes([0xA0] + [0] * 5 + [0, 0, 0, 16, 0, 0]), in_len=16)
    assert response(raw)[1] == 0 and struct.unpack_from(">I", data)[0] == 8
    _, raw, _ = rig.command(bytes([0x00] * 6), target=2)
    assert response(raw)[0] == vs.S_BAD_TARGET
    _, raw, _ = rig.command(bytes([0x00] * 6), lun_bytes=bytes(8))  # not single-level
    assert response(raw)[0] == vs.S_BAD_TARGET
    _, raw, inq = rig.command(bytes([0x12, 0, 0, 0, 36, 0]), lun=3, in_len=36)
    assert response(raw)[1] == 0 and inq[0] == 0x7F


def test_task_management_and_event_queries_are_answered(rig):
    ram, space = rig.m.ram, rig.m.space
    tmf = ram.alloc(24)
    space.write(tmf, struct.pack("<II", vs.T_TMF, 0) + bytes([1, 1, 0x40, 0]) + bytes(12))
    answer = ram.alloc(1)
    space.write(answer, b"\xff")
    head = rig.ctrl.add([(tmf, 24, False), (answer, 1, True)])
    an = ram.alloc(16)
    space.write(an, struct.pack("<I", vs.T_AN_QUERY) + bytes(12))
    an_resp = ram.alloc(5)
    space.write(an_resp, b"\xff" * 5)
    head2 = rig.ctrl.add([(an, 16, False), (an_resp, 5, True)])
    rig.ctrl.kick()
    rig.settle()
    used = dict(rig.ctrl.get_used())
    assert used[head] == 1 and space.read(answer, 1) == bytes([vs.S_FUNCTION_COMPLETE])
    assert used[head2] == 5 and space.read(an_resp, 5) == bytes(5)


def test_bad_requests_never_raise(rig):
    # a response buffer too small to hold a response: handed back with nothing written
    written, _, _ = rig.command(bytes(6), resp_len=8)
    assert written == 0
    # a short header
    ram, space = rig.m.ram, rig.m.space
    head, resp = ram.alloc(8), ram.alloc(RESP)
    h = rig.req.add([(head, 8, False), (resp, RESP, True)])
    rig.req.kick()
    assert dict(rig.req.get_used())[h] == RESP
    assert response(space.read(resp, RESP))[0] == vs.S_FAILURE
    # a descriptor outside RAM: the device wants a reset, the VM goes on
    rig.req.add([(RAM_BASE + RAM_SIZE + 0x1000, vs.REQ_HEADER, False), (resp, RESP, True)])
    rig.req.kick()
    assert rig.drv.r(vp.DEVICE_STATUS, 1) & STATUS_DEVICE_NEEDS_RESET
