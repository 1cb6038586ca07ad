"""virtio-9p on the virtio-mmio transport, driven as Linux's 9pnet_virtio drives it:
config space with the mount tag, one T-message per chain, and big reads and writes
whose payload lies in further descriptors of the chain."""

from __future__ import annotations

import os
import struct

import pytest
from virtio_driver import MODERN, Driver, make_machine

from pemu.fs9p import protocol as p
from pemu.fs9p.local import LocalFS
from pemu.fs9p.protocol import Decoder, Encoder
from pemu.fs9p.server import Server
from pemu.hw.riscv.virt import VirtBoard
from pemu.hw.virtio import mmio as r
from pemu.hw.virtio.virtio_9p import VIRTIO_9P_MOUNT_TAG, Virtio9P
from pemu.migration.machine_state import blocked_reason
from pemu.qemuopts.config import SystemConfig


@pytest.fixture
def machine(tmp_path):
    fs = LocalFS(str(tmp_path), "passthrough")
    dev = Virtio9P(Server(fs), "hostshare", export_path=str(tmp_path))
    space, transport, irq = make_machine(dev)
    drv = Driver(space)
    yield drv, dev, tmp_path, irq
    dev.close()


def rpc(drv, q, request: bytes, in_sizes=(8192,), out_split=None) -> bytes:
    """Send ``request`` (cut into out descriptors at ``out_split``) with writable buffers
    of ``in_sizes``; returns the reply the device wrote."""
    pieces = [request] if out_split is None else [request[:out_split], request[out_split:]]
    bufs = []
    for piece in pieces:
        addr = drv.ram.alloc(len(piece))
        drv.space.write(addr, piece)
        bufs.append((addr, len(piece), False))
    ins = [(drv.ram.alloc(n), n, True) for n in in_sizes]
    head = q.add(bufs + ins)
    q.kick()
    used = q.get_used()
    assert [h for h, _ in used] == [head]
    written = used[0][1]
    out = b"".join(drv.space.read(a, n) for a, n, _ in ins)
    return out[:written]


def msg(mtype: int, enc: Encoder, tag: int = 1) -> bytes:
    return p.message(mtype, tag, enc.buf)


def test_features_and_config_carry_the_mount_tag(machine):
    drv, *_ = machine
    assert drv.device_features() & (1 << VIRTIO_9P_MOUNT_TAG)
    drv.negotiate()
    assert drv.config(0, 2) == len(b"hostshare")
    assert bytes(drv.config(2 + i, 1) for i in range(9)) == b"hostshare"


def test_a_session_over_the_queue_with_split_payloads(machine, tmp_path):
    drv, dev, root, irq = machine
    (q,) = drv.bring_up(1, want=MODERN | (1 << VIRTIO_9P_MOUNT_TAG))
    reply = rpc(drv, q, msg(p.TVERSION, Encoder().u32(256 * 1024).string(b"9P2000.L")))
    d = Decoder(reply)
    assert reply[4] == p.TVERSION + 1 and d.u32() == 256 * 1024 and d.string() == b"9P2000.L"
    rpc(drv, q, msg(p.TATTACH, Encoder().u32(1).u32(p.NOFID).string(b"").string(b"").u32(0)))
    rpc(drv, q, msg(p.TWALK, Encoder().u32(1).u32(2).u16(0)))
    reply = rpc(drv, q, msg(p.TLCREATE, Encoder().u32(2).string(b"big").u32(p.DOTL_RDWR)
                            .u32(0o644).u32(0)))
    assert reply[4] == p.TLCREATE + 1
    # a 100 KiB write: header in one descriptor, payload in the next (zero-copy layout)
    data = os.urandom(100 * 1024)
    header = Encoder().u32(2).u64(0).u32(len(data)).buf
    request = msg(p.TWRITE, Encoder().raw(header).raw(data))
    reply = rpc(drv, q, request, out_split=p.HEADER.size + len(header))
    assert struct.unpack_from("<I", reply, 7)[0] == len(data)
    assert (root / "big").read_bytes() == data
    # a read whose reply spreads over an 11-byte header buffer and several pages
    reply = rpc(drv, q, msg(p.TREAD, Encoder().u32(2).u64(0).u32(len(data))),
                in_sizes=(p.IOHDR_SIZE, *[4096] * 25))
    assert struct.unpack_from("<I", reply, 7)[0] == len(data)
    assert reply[p.IOHDR_SIZE:] == data
    assert irq.level


def test_reset_forgets_the_fids(machine):
    drv, dev, root, irq = machine
    (q,) = drv.bring_up(1)
    rpc(drv, q, msg(p.TVERSION, Encoder().u32(65536).string(b"9P2000.L")))
    rpc(drv, q, msg(p.TATTACH, Encoder().u32(1).u32(p.NOFID).string(b"").string(b"").u32(0)))
    assert dev.server.fids and dev.blocks_migration  # mounted: savevm/migrate refuse
    assert dev.migration_blocker == (f"Migration is disabled when VirtFS export path "
                                     f"'{root}' is mounted in the guest using mount_tag "
                                     "'hostshare'")  # QEMU's words
    drv.w32(r.STATUS, 0)  # reset
    dev.drain()
    assert not dev.server.fids and not dev.blocks_migration


def test_a_chain_without_room_for_a_header_gets_nothing(machine):
    drv, *_ = machine
    (q,) = drv.bring_up(1)
    assert rpc(drv, q, b"\x01\x02", in_sizes=(64,)) == b""


def test_a_mounted_share_blocks_savevm_on_virt(tmp_path):
    kernel = tmp_path / "kernel.elf"
    kernel.write_bytes(b"\x7fELF" + bytes(60))  # only looked at, never loaded here
    board = VirtBoard(SystemConfig(bios="none", kernel=str(kernel), ram_size=32 << 20))
    (tmp_path / "share").mkdir()
    share = str(tmp_path / "share")
    dev = Virtio9P(Server(LocalFS(share, "none")), "t", id="share0", export_path=share)
    board.add_virtio(dev, "share0")
    try:
        assert board.migration_blockers() == []
        dev.server.handle(msg(p.TATTACH, Encoder().u32(1).u32(p.NOFID).string(b"")
                              .string(b"").u32(0)))
        why = (f"Migration is disabled when VirtFS export path '{share}' is mounted in "
               "the guest using mount_tag 't'")  # QEMU's words, naming export and tag
        assert board.migration_blockers() == [why] and blocked_reason(board) == why
    finally:
        dev.close()
