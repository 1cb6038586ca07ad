"""The NVMe controller driven through its BARs by tests/hw/nvme_driver.py."""

from __future__ import annotations

import os
import struct
import threading

from nvme_driver import PAGE, NvmeDriver, prps_for, sqe
from pci_driver import RAM_BASE, RAM_SIZE, PCIMachine, msix_entry, u32_at

from pemu.block import open_drive
from pemu.hw.nvme import spec as S
from pemu.hw.nvme.controller import NvmeController
from pemu.hw.nvme.namespace import Namespace
from pemu.hw.pci import config as C
from pemu.hw.pci.capability import CAP_ID_MSIX

MiB = 1 << 20
SLOT = 4


def disk(tmp_path, name="disk.raw", size=4 * MiB):
    path = tmp_path / name
    data = os.urandom(size)
    path.write_bytes(data)
    return path, data


def make(tmp_path, namespaces=1, read_only=False, **ctrl_kw):
    """A PCI machine with an nvme controller in slot 4 and ``namespaces`` raw disks."""
    m = PCIMachine()
    ctrl = NvmeController(m.space, "pemu-serial-1", id="nvme0", **ctrl_kw)
    images = []
    for n in range(1, namespaces + 1):
        path, data = disk(tmp_path, f"ns{n}.raw")
        opts = {"file": str(path), "format": "raw", "discard": "unmap"}
        if read_only:
            opts["read-only"] = "on"
        ctrl.attach(Namespace(open_drive(opts), n))
        images.append((path, data))
    m.host.root_bus.plug(ctrl, SLOT << 3)
    drv = NvmeDriver(m, SLOT << 3)
    drv.enable()
    assert drv.r(S.REG_CSTS) & S.CSTS_RDY
    return m, ctrl, drv, images


def rw(q, opcode, nsid, slba, nblocks, prp1, prp2=0, flags=0):
    return q.cmd(opcode, nsid=nsid, prp1=prp1, prp2=prp2,
                 cdw=(slba & 0xFFFFFFFF, slba >> 32, (nblocks - 1) | flags))


# -- identity, registers, identify ------------------------------------------------------------
def test_pci_identity_bar0_and_registers(tmp_path):
    m, ctrl, drv, _ = make(tmp_path)
    cfg = drv.cfg
    assert (cfg.r(C.VENDOR_ID, 2), cfg.r(C.DEVICE_ID, 2)) == (0x1B36, 0x0010)
    assert cfg.r(C.REVISION_ID, 4) >> 8 == 0x010802
    assert CAP_ID_MSIX in dict(cfg.capabilities())
    assert cfg.r(C.INTERRUPT_PIN, 1) == 1
    cap = drv.r(S.REG_CAP, 8)
    assert cap & 0xFFFF == 2047 and cap >> 16 & 1  # MQES, CQR
    assert (cap >> 32) & 0xF == 0  # doorbell stride 0
    assert (cap >> 37) & 1  # NVM command set
    assert drv.r(S.REG_CAP + 4) == cap >> 32  # two dword reads, as lo_hi_readq
    assert drv.r(S.REG_VS) == 0x00010400
    assert drv.r(S.REG_ASQ, 8) == drv.admin.sq


def test_identify_controller_namespace_and_lists(tmp_path):
    m, ctrl, drv, images = make(tmp_path, namespaces=2)
    c, data = drv.identify(S.CNS_CONTROLLER)
    assert c.status == 0
    assert struct.unpack_from("<H", data, 0)[0] == 0x1B36
    assert data[4:24].rstrip() == b"pemu-serial-1"
    assert data[24:40] == b"QEMU NVMe Ctrl  "
    assert struct.unpack_from("<I", data, 80)[0] == 0x00010400
    assert data[512] == 0x66 and data[513] == 0x44
    oncs = struct.unpack_from("<H", data, 520)[0]
    assert oncs & 0x4 and oncs & 0x8  # DSM, write zeroes
    c, data = drv.identify(S.CNS_NAMESPACE, nsid=2)
    nsze, ncap = struct.unpack_from("<QQ", data, 0)
    assert nsze == ncap == len(images[1][1]) // 512
    assert (struct.unpack_from("<I", data, 128)[0] >> 16) & 0xFF == 9  # 512-byte LBAs
    c, data = drv.identify(S.CNS_NAMESPACE, nsid=7)  # inactive: zeroes
    assert c.status == 0 and data == bytes(PAGE)
    c, data = drv.identify(S.CNS_ACTIVE_NS_LIST, nsid=0)
    assert struct.unpack_from("<3I", data) == (1, 2, 0)
    c, data = drv.identify(S.CNS_ACTIVE_NS_LIST, nsid=1)
    assert struct.unpack_from("<2I", data) == (2, 0)
    _, d1 = drv.identify(S.CNS_NS_DESCRIPTORS, nsid=1)
    _, d2 = drv.identify(S.CNS_NS_DESCRIPTORS, nsid=2)
    assert d1[0] == 3 and d1[1] == 16 and d1[4:20] != d2[4:20]
    assert drv.identify(S.CNS_NAMESPACE, nsid=0)[0].status == S.INVALID_NAMESPACE
    c, data = drv.identify(S.CNS_CSI_CONTROLLER)  # NVM command set: no extra limits
    assert c.status == 0 and data == bytes(PAGE)
    assert drv.identify(0x55)[0].status == S.INVALID_FIELD


def test_features_log_pages_abort_and_async_events(tmp_path):
    m, ctrl, drv, _ = make(tmp_path, max_ioqpairs=8)
    a = drv.admin
    c = a.cmd(S.ADM_SET_FEATURES, cdw=(S.FEAT_NUM_QUEUES, 3 << 16 | 3))
    assert c.status == 0 and c.result == 7 << 16 | 7
    assert a.cmd(S.ADM_GET_FEATURES, cdw=(S.FEAT_NUM_QUEUES,)).result == 7 << 16 | 7
    assert a.cmd(S.ADM_SET_FEATURES, cdw=(S.FEAT_TEMP_THRESHOLD, 0x160)).status == 0
    assert a.cmd(S.ADM_GET_FEATURES, cdw=(S.FEAT_TEMP_THRESHOLD,)).result == 0x160
    assert a.cmd(S.ADM_SET_FEATURES, cdw=(0x77, 0)).status == S.INVALID_FIELD
    assert a.cmd(S.ADM_SET_FEATURES,
                 cdw=(1 << 31 | S.FEAT_ARBITRATION, 0)).status == S.FEATURE_NOT_SAVEABLE
    buf = drv.ram.alloc(PAGE, PAGE)
    numd = 512 // 4 - 1
    c = a.cmd(S.ADM_GET_LOG_PAGE, prp1=buf, cdw=(numd << 16 | S.LOG_SMART,))
    assert c.status == 0 and drv.space.read(buf + 3, 1) == b"\x64"  # spare 100 %
    c = a.cmd(S.ADM_GET_LOG_PAGE, prp1=buf, cdw=(numd << 16 | S.LOG_FW_SLOT,))
    assert c.status == 0 and drv.space.read(buf + 8, 3) == b"1.0"
    assert a.cmd(S.ADM_GET_LOG_PAGE, prp1=buf, cdw=(numd << 16 | 0x42,)).status \
        == S.INVALID_LOG_PAGE
    assert a.cmd(S.ADM_ABORT, cdw=(1 << 16,)).result & 1  # not aborted
    for cid in range(100, 104):  # four requests stay outstanding
        a.submit(sqe(S.ADM_ASYNC_EVENT, cid))
    assert a.peek() is None
    c = a.cmd(S.ADM_ASYNC_EVENT)
    assert c.status == S.AER_LIMIT_EXCEEDED and c.dnr


# -- I/O ---------------------------------------------------------------------------------------
def test_write_read_with_prp_lists_and_flush(tmp_path):
    m, ctrl, drv, [(path, data)] = make(tmp_path)
    q = drv.create_io_queues(1)
    # 64 KiB + an unaligned start: PRP1 mid-page and a PRP list over scattered pages
    pages = [drv.ram.alloc(PAGE, PAGE) for _ in range(18)][::-1]
    payload = os.urandom(64 * 1024)
    prp1, prp2, pages = prps_for(drv.ram, len(payload) + 512, pages)
    prp1 += 512
    pos = 0
    for i, page in enumerate(pages):
        start = page + (512 if i == 0 else 0)
        take = min(len(payload) - pos, page + PAGE - start)
        drv.space.write(start, payload[pos:pos + take])
        pos += take
    assert rw(q, S.NVM_WRITE, 1, 100, 128, prp1, prp2).status == 0
    assert q.cmd(S.NVM_FLUSH, nsid=1).status == 0
    assert q.cmd(S.NVM_FLUSH, nsid=S.BROADCAST_NSID).status == 0
    ctrl.namespaces[1].backend.drain()
    on_disk = path.read_bytes()
    assert on_disk[100 * 512:100 * 512 + len(payload)] == payload
    assert on_disk[:100 * 512] == data[:100 * 512]
    # read it back: 2 pages (PRP2 a page, not a list)
    buf = drv.ram.alloc(2 * PAGE, PAGE)
    assert rw(q, S.NVM_READ, 1, 100, 16, buf, buf + PAGE).status == 0
    assert drv.space.read(buf, 2 * PAGE) == payload[:2 * PAGE]
    # one page, FUA write
    assert rw(q, S.NVM_WRITE, 1, 0, 8, buf, flags=1 << 30).status == 0
    assert path.read_bytes()[:PAGE] == payload[:PAGE]


def test_chained_prp_list_beyond_one_list_page(tmp_path):
    m, ctrl, drv, [(path, _)] = make(tmp_path, mdts=0)  # mdts 0: no transfer limit
    q = drv.create_io_queues(1)
    length = 2 * MiB + 2 * PAGE  # 514 pages: 513 entries over two list pages
    prp1, prp2, pages = prps_for(drv.ram, length)
    payload = os.urandom(length)
    for i, page in enumerate(pages):
        drv.space.write(page, payload[i * PAGE:(i + 1) * PAGE])
    assert rw(q, S.NVM_WRITE, 1, 8, length // 512, prp1, prp2).status == 0
    ctrl.namespaces[1].backend.drain()
    assert path.read_bytes()[8 * 512:8 * 512 + length] == payload


def test_write_zeroes_and_dataset_management_deallocate(tmp_path):
    m, ctrl, drv, [(path, data)] = make(tmp_path)
    backend = ctrl.namespaces[1].backend
    discards = []
    real = backend.discard
    backend.discard = lambda off, n: (discards.append((off, n)), real(off, n))
    q = drv.create_io_queues(1)
    assert q.cmd(S.NVM_WRITE_ZEROES, nsid=1, cdw=(16, 0, 7)).status == 0
    backend.drain()
    assert path.read_bytes()[16 * 512:24 * 512] == bytes(8 * 512)
    assert path.read_bytes()[24 * 512:25 * 512] == data[24 * 512:25 * 512]
    ranges = drv.ram.alloc(PAGE, PAGE)
    drv.space.write(ranges, struct.pack("<IIQIIQ", 0, 8, 64, 0, 16, 1024))
    c = q.cmd(S.NVM_DSM, nsid=1, prp1=ranges, cdw=(1, 1 << 2))  # 2 ranges, deallocate
    assert c.status == 0
    backend.drain()
    assert discards == [(64 * 512, 8 * 512), (1024 * 512, 16 * 512)]
    c = q.cmd(S.NVM_DSM, nsid=1, prp1=ranges, cdw=(0, 0))  # attributes only: nothing
    assert c.status == 0 and len(discards) == 2
    drv.space.write(ranges, struct.pack("<IIQ", 0, 8, 1 << 40))
    assert q.cmd(S.NVM_DSM, nsid=1, prp1=ranges, cdw=(0, 1 << 2)).status \
        == S.LBA_OUT_OF_RANGE


def test_completions_are_posted_in_order_of_completion(tmp_path):
    """A read on namespace 1 (blocked in the block layer) does not hold back a read on
    namespace 2 submitted after it: each drive has its own I/O thread."""
    m, ctrl, drv, images = make(tmp_path, namespaces=2)
    gate = threading.Event()
    be1 = ctrl.namespaces[1].backend
    real = be1.preadv
    be1.preadv = lambda off, bufs: (gate.wait(10), real(off, bufs))[1]
    q = drv.create_io_queues(1)
    buf1, buf2 = drv.ram.alloc(PAGE, PAGE), drv.ram.alloc(PAGE, PAGE)
    q.submit(sqe(S.NVM_READ, 11, 1, buf1, cdw=(0, 0, 7)), ring=False)
    q.submit(sqe(S.NVM_READ, 22, 2, buf2, cdw=(0, 0, 7)))
    first = q.reap()
    assert first.cid == 22 and first.status == 0
    assert q.peek() is None
    gate.set()
    second = q.reap()
    assert second.cid == 11 and second.status == 0
    assert drv.space.read(buf1, PAGE) == images[0][1][:PAGE]
    assert drv.space.read(buf2, PAGE) == images[1][1][:PAGE]
    assert (first.sq_head, second.sq_head) == (2, 2)


# -- interrupts ------------------------------------------------------------------------------
def test_intx_follows_unconsumed_completions_and_intms(tmp_path):
    m, ctrl, drv, _ = make(tmp_path)
    line = m.intx[(SLOT + 0) % 4]  # INTA# of slot 4 after the swizzle
    a = drv.admin
    a.submit(sqe(S.ADM_GET_FEATURES, 5, cdw=(S.FEAT_NUM_QUEUES,)))
    assert line.level and ctrl.intx_level
    a.reap(ring=False)
    assert line.level  # still unread as far as the controller knows
    a.ring_head()
    assert not line.level
    drv.w(S.REG_INTMS, 1)
    a.submit(sqe(S.ADM_GET_FEATURES, 6, cdw=(S.FEAT_NUM_QUEUES,)))
    assert not line.level
    drv.w(S.REG_INTMC, 1)
    assert line.level
    a.reap()
    assert not line.level


def test_msix_vector_per_completion_queue(tmp_path):
    m, ctrl, drv, _ = make(tmp_path)
    table = drv.bar0 + 0x2000
    msg = drv.ram.alloc(16)
    for v in range(3):
        msix_entry(m.space, table, v, msg + 4 * v, 0x100 + v, masked=False)
    cap = dict(drv.cfg.capabilities())[CAP_ID_MSIX]
    drv.cfg.w(cap + 2, 2, 0x8000)  # MSI-X enable
    q = drv.create_io_queues(1, vector=2)
    assert u32_at(m.space, msg) == 0x100  # the admin completions: vector 0
    buf = drv.ram.alloc(PAGE, PAGE)
    assert rw(q, S.NVM_READ, 1, 0, 8, buf).status == 0
    assert u32_at(m.space, msg + 8) == 0x102
    assert not any(line.level for line in m.intx)
    assert q.cmd(S.ADM_CREATE_CQ).status  # (an admin opcode on an I/O queue: refused)
    assert drv.admin.cmd(S.ADM_CREATE_CQ, prp1=drv.ram.alloc(PAGE, PAGE),
                         cdw=(15 << 16 | 2, 65 << 16 | 3)).status == S.INVALID_VECTOR


# -- errors: statuses, never host exceptions ------------------------------------------------------
def test_bad_commands_get_nvme_statuses(tmp_path):
    m, ctrl, drv, _ = make(tmp_path, max_ioqpairs=4)
    a = drv.admin
    assert a.cmd(0x7F).status == S.INVALID_OPCODE
    q = drv.create_io_queues(1)
    buf = drv.ram.alloc(PAGE, PAGE)
    assert q.cmd(0x7E, nsid=1).status == S.INVALID_OPCODE
    assert rw(q, S.NVM_READ, 9, 0, 1, buf).status == S.INVALID_NAMESPACE
    assert rw(q, S.NVM_READ, 1, 8192, 1, buf).status == S.LBA_OUT_OF_RANGE
    outside = RAM_BASE + RAM_SIZE + 0x1000
    assert rw(q, S.NVM_READ, 1, 0, 1, outside).status == S.DATA_TRANSFER_ERROR
    assert rw(q, S.NVM_READ, 1, 0, 16, buf, buf + 8).status == S.PRP_OFFSET_INVALID
    assert rw(q, S.NVM_READ, 1, 0, 24, buf, outside).status == S.DATA_TRANSFER_ERROR
    assert rw(q, S.NVM_READ, 1, 0, 2048, buf).status == S.INVALID_FIELD  # > MDTS
    assert q.cmd(S.NVM_READ, nsid=1, prp1=buf, flags=0x40).status == S.INVALID_FIELD  # SGL
    # queue management
    ring = drv.ram.alloc(PAGE, PAGE)
    assert a.cmd(S.ADM_CREATE_SQ, prp1=ring, cdw=(7 << 16 | 2, 3 << 16 | 1)).status \
        == S.CQ_INVALID
    assert a.cmd(S.ADM_CREATE_CQ, prp1=ring, cdw=(7 << 16 | 1, 1)).status == S.INVALID_QID
    assert a.cmd(S.ADM_CREATE_CQ, prp1=ring, cdw=(7 << 16 | 5, 1)).status == S.INVALID_QID
    assert a.cmd(S.ADM_CREATE_CQ, prp1=ring, cdw=(4095 << 16 | 2, 1)).status \
        == S.INVALID_QUEUE_SIZE
    assert a.cmd(S.ADM_CREATE_CQ, prp1=outside, cdw=(7 << 16 | 2, 1)).status \
        == S.DATA_TRANSFER_ERROR
    assert a.cmd(S.ADM_CREATE_CQ, prp1=ring + 64, cdw=(7 << 16 | 2, 1)).status \
        == S.PRP_OFFSET_INVALID
    assert a.cmd(S.ADM_DELETE_CQ, cdw=(1,)).status == S.INVALID_QUEUE_DELETION
    assert a.cmd(S.ADM_DELETE_SQ, cdw=(3,)).status == S.INVALID_QID
    assert a.cmd(S.ADM_DELETE_SQ, cdw=(1,)).status == 0
    assert a.cmd(S.ADM_DELETE_CQ, cdw=(1,)).status == 0
    assert a.cmd(S.ADM_DELETE_CQ, cdw=(1,)).status == S.INVALID_QID


def test_doorbell_misuse_and_full_completion_queue(tmp_path):
    m, ctrl, drv, _ = make(tmp_path)
    q = drv.create_io_queues(1, entries=4)
    drv.doorbell(2 * 1, 99)  # tail beyond the ring: ignored
    drv.doorbell(2 * 7, 1)  # a queue that does not exist
    drv.doorbell(2 * 1 + 1, 99)
    assert q.peek() is None
    # 6 flushes through a 4-entry CQ (3 usable slots): the rest wait for the head
    for cid in range(6):
        q.submit(sqe(S.NVM_FLUSH, cid, 1), ring=cid % 3 == 2)
    got = [q.reap(ring=False).cid for _ in range(3)]
    ctrl.namespaces[1].backend.drain()
    assert q.peek() is None  # full: nothing overwritten
    q.ring_head()
    got += [q.reap().cid for _ in range(3)]
    assert got == list(range(6))


def test_read_only_drive_and_failing_backend(tmp_path):
    m, ctrl, drv, _ = make(tmp_path, read_only=True)
    q = drv.create_io_queues(1)
    buf = drv.ram.alloc(PAGE, PAGE)
    assert rw(q, S.NVM_WRITE, 1, 0, 1, buf).status == S.NS_WRITE_PROTECTED
    assert q.cmd(S.NVM_WRITE_ZEROES, nsid=1, cdw=(0, 0, 0)).status == S.NS_WRITE_PROTECTED

    def broken(*a):
        raise OSError(5, "Input/output error")
    ctrl.namespaces[1].backend.preadv = broken
    assert rw(q, S.NVM_READ, 1, 0, 1, buf).status == S.UNRECOVERED_READ


def test_bad_admin_queue_is_fatal_status_and_reset_recovers(tmp_path):
    m, ctrl, drv, _ = make(tmp_path)
    q = drv.create_io_queues(1)
    drv.enable(asq=RAM_BASE + RAM_SIZE)  # outside RAM
    assert drv.r(S.REG_CSTS) == S.CSTS_CFS
    assert not ctrl.sqs
    drv.doorbell(0, 1)  # not ready: ignored
    drv.enable()
    assert drv.r(S.REG_CSTS) == S.CSTS_RDY
    assert drv.identify(S.CNS_CONTROLLER)[0].status == 0
    assert 1 not in ctrl.sqs and q  # the reset dropped the I/O queues
    drv.w(S.REG_CC, drv.r(S.REG_CC) | 1 << 14)  # normal shutdown
    assert (drv.r(S.REG_CSTS) >> 2) & 3 == 2
