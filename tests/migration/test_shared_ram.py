"""Shared-memory guest RAM and the CPR pieces, in one process (no guest): memfd and
file backings of a RAM block, the stream's S records, the cpr channel's descriptor
hand-over and its checks, QEMU's channel syntax."""

from __future__ import annotations

import mmap
import os
import threading
from types import SimpleNamespace

import pytest

from pemu.block.accounting import AccountingNode
from pemu.memory.address_space import RAMBlock
from pemu.memory.shared_ram import create_memfd, open_file
from pemu.migration.channel_spec import ChannelSpecError, channels_uris, incoming_option
from pemu.migration.cpr import CprError, CprListener, send_ram
from pemu.migration.machine_state import MachineLoader
from pemu.migration.mapped_ram import restore, save_mapped
from pemu.migration.ram import nonzero_pages, send_pages
from pemu.migration.stream import (
    PAGE_SIZE,
    SHARED_BY_CHANNEL,
    SHARED_BY_PATH,
    StreamError,
    StreamReader,
    StreamWriter,
    bytes_source,
)
from pemu.monitor.migrate import _reread_disks
from tests.migration.test_mapped_ram import RamOnlyMachine

MiB = 1 << 20


def _memfd_block(size: int = 4 * MiB, attach: bool = True) -> RAMBlock:
    block = RAMBlock("ram0", 0x8000_0000, size)
    block.backing = create_memfd("test", size)
    if attach:
        block.attach_backing()
    return block


def _allocated(fd: int) -> int:
    return os.fstat(fd).st_blocks * 512


def test_memfd_block_is_the_memfd():
    block = _memfd_block()
    block.view[5 * PAGE_SIZE:5 * PAGE_SIZE + 5] = b"guest"
    assert os.pread(block.backing.fd, 5, 5 * PAGE_SIZE) == b"guest"
    # another mapping of the descriptor (what a new pemu does) sees the same pages
    other = mmap.mmap(block.backing.fd, block.size)
    other[9 * PAGE_SIZE] = 0x42
    assert block.view[9 * PAGE_SIZE] == 0x42 and block.ram_in_place
    other.close()


def test_zero_all_and_discard_punch_the_memfd():
    block = _memfd_block()
    block.view[:] = b"\xaa" * block.size
    assert _allocated(block.backing.fd) >= block.size
    assert block.discard(PAGE_SIZE, 2 * PAGE_SIZE) == 2 * PAGE_SIZE
    assert os.pread(block.backing.fd, 2 * PAGE_SIZE, PAGE_SIZE) == bytes(2 * PAGE_SIZE)
    assert block.view[0] == 0xAA and block.view[3 * PAGE_SIZE] == 0xAA
    block.zero_all()
    assert _allocated(block.backing.fd) == 0  # (reading a hole of shmem allocates it)
    assert not any(block.view[::PAGE_SIZE])
    assert block.ram_in_place  # still the memfd, not anonymous memory


def test_mapped_ram_restore_over_a_memfd_and_back(tmp_path):
    src = RamOnlyMachine(4 * MiB)
    src.blocks[0].view[0:4] = b"snap"
    save_mapped(src, str(tmp_path / "snap"))
    dst = RamOnlyMachine(4 * MiB)
    dst.blocks[0] = _memfd_block()
    restore(dst, str(tmp_path / "snap"))
    block = dst.blocks[0]
    assert bytes(block.view[0:4]) == b"snap" and not block.ram_in_place
    block.zero_all()  # the block's own kind of memory again: the memfd
    assert block.ram_in_place and not any(block.view[0:4])
    block.view[0:2] = b"ok"
    assert os.pread(block.backing.fd, 2, 0) == b"ok"


def test_file_backing_keeps_and_never_shrinks_the_file(tmp_path):
    path = tmp_path / "ram"
    path.write_bytes(b"old!" + bytes(8 * MiB - 4))
    backing = open_file(str(path), 4 * MiB, share=True)
    assert os.path.getsize(path) == 8 * MiB
    block = RAMBlock("ram0", 0, 4 * MiB)
    block.backing = backing
    block.attach_backing()
    assert bytes(block.view[0:4]) == b"old!"  # a file's contents are the RAM's
    block.view[0:4] = b"new!"
    block.mem.flush()
    assert path.read_bytes()[:4] == b"new!"
    unnamed = open_file(str(tmp_path), MiB, share=True)  # a directory: unlinked file
    assert os.fstat(unnamed.fd).st_size == MiB and list(tmp_path.iterdir()) == [path]


def _cpr_stream(src: RamOnlyMachine, how: int, path: str = "") -> bytes:
    out = bytearray()
    w = StreamWriter(out.extend)
    w.header(src.migration_description())
    for block in src.blocks:
        if block.ram_in_place:
            w.shared(block.name, how, path, block.size)
        else:
            send_pages(w, block, list(nonzero_pages(block)), skip_zero=True)
    w.end()
    return bytes(out)


def _load(dst: RamOnlyMachine, data: bytes, received=None) -> None:
    reader = StreamReader(bytes_source(data))
    loader = MachineLoader(dst, received)
    loader.begin(reader)
    loader.apply_all(reader)


def test_s_record_maps_the_received_memfd_and_copies_nothing():
    src = RamOnlyMachine(4 * MiB, MiB)
    src.blocks[0] = _memfd_block()
    src.blocks[0].view[0:3] = b"cpr"
    src.blocks[1].view[0:3] = b"rom"
    data = _cpr_stream(src, SHARED_BY_CHANNEL)
    assert len(data) < 2 * PAGE_SIZE  # one page of the private block, no RAM block
    dst = RamOnlyMachine(4 * MiB, MiB)
    dst.blocks[0] = _memfd_block(attach=False)  # an -incoming pemu: not mapped yet
    handed = create_memfd("handed", 4 * MiB)
    os.dup2(src.blocks[0].backing.fd, handed.fd)  # what SCM_RIGHTS delivers
    _load(dst, data, {"ram0": handed})
    assert bytes(dst.blocks[0].view[0:3]) == b"cpr" and bytes(dst.blocks[1].view[0:3]) == b"rom"
    dst.blocks[0].view[8:10] = b"!!"
    assert bytes(src.blocks[0].view[8:10]) == b"!!"  # one RAM, two processes' views
    assert dst.loaded


def test_s_record_refusals():
    src = RamOnlyMachine(4 * MiB)
    src.blocks[0] = _memfd_block()
    data = _cpr_stream(src, SHARED_BY_CHANNEL)
    with pytest.raises(StreamError, match="none came on the cpr channel"):
        _load(RamOnlyMachine(4 * MiB), data)
    by_path = _cpr_stream(src, SHARED_BY_PATH, "/nonexistent/ram")
    with pytest.raises(StreamError, match="same memory-backend-file"):
        _load(RamOnlyMachine(4 * MiB), by_path)
    for cut in range(1, len(data)):  # every truncation is refused, never half-applied
        with pytest.raises(StreamError):
            _load(RamOnlyMachine(4 * MiB), data[:cut])


def test_unmentioned_deferred_block_starts_zero_in_its_memfd():
    src = RamOnlyMachine(4 * MiB)
    dst = RamOnlyMachine(4 * MiB)
    dst.blocks[0] = _memfd_block(attach=False)
    _load(dst, _cpr_stream(src, SHARED_BY_CHANNEL))  # src has no shared block: no S
    assert dst.blocks[0].ram_in_place and not any(dst.blocks[0].view[::PAGE_SIZE])


def _hand_over(tmp_path, sent: list[RAMBlock], ours: list[RAMBlock]):
    listener = CprListener(f"unix:{tmp_path / 'cpr.sock'}")
    listener.listen()
    got: dict = {}

    def receive() -> None:
        try:
            got["backings"] = listener.receive(ours)
        except CprError as e:
            got["error"] = str(e)

    t = threading.Thread(target=receive)
    t.start()
    try:
        send_ram(f"unix:{tmp_path / 'cpr.sock'}", sent)
    except CprError as e:
        got["source"] = str(e)
    t.join(30)
    return got


def test_cpr_channel_hands_descriptors_over(tmp_path):
    src = _memfd_block()
    src.view[0:5] = b"hello"
    got = _hand_over(tmp_path, [src], [RAMBlock("ram0", 0x8000_0000, 4 * MiB)])
    backing = got["backings"]["ram0"]
    assert os.pread(backing.fd, 5, 0) == b"hello"
    assert os.fstat(backing.fd).st_ino == os.fstat(src.backing.fd).st_ino


def test_cpr_channel_refuses_a_block_of_another_size(tmp_path):
    got = _hand_over(tmp_path, [_memfd_block()], [RAMBlock("ram0", 0x8000_0000, 8 * MiB)])
    assert "no such block" in got["error"] and "no such block" in got["source"]


def test_channel_syntax():
    unix = {"transport": "socket", "type": "unix", "path": "/run/m"}
    inet = {"transport": "socket", "type": "inet", "host": "127.0.0.1", "port": "4444"}
    assert channels_uris([{"channel-type": "main", "addr": inet},
                          {"channel-type": "cpr", "addr": unix}]) == {
        "main": "tcp:127.0.0.1:4444", "cpr": "unix:/run/m"}
    assert channels_uris([{"channel-type": "main", "addr": {
        "transport": "exec", "args": ["cat", "a b"]}}]) == {"main": "exec:cat 'a b'"}
    assert incoming_option("unix:/x") == ("main", "unix:/x")
    assert incoming_option('{"channel-type":"cpr","addr":{"transport":"socket",'
                           '"type":"unix","path":"/c"}}') == ("cpr", "unix:/c")
    for bad in ([{"channel-type": "cpr", "addr": inet}],  # descriptors need UNIX
                [{"channel-type": "main", "addr": unix}] * 2,
                [{"channel-type": "side", "addr": unix}], []):
        with pytest.raises(ChannelSpecError):
            channels_uris(bad)
    with pytest.raises(ChannelSpecError, match="JSON"):
        incoming_option("{oops")


def test_incoming_rereads_a_qcow2_the_source_wrote(tmp_path):
    """A live update's new pemu opened the image before the old one's last writes:
    after the switch-over it must see them (Qcow2Node.invalidate_cache)."""
    from pemu.block import open_image
    from pemu.block.qcow2 import create_qcow2

    path = str(tmp_path / "disk.qcow2")
    create_qcow2(path, 64 * MiB)
    old, new = open_image(path, "qcow2"), open_image(path, "qcow2")
    old.write(5 * MiB, b"written by the old pemu".ljust(512, b"."))
    old.flush()
    assert new.read(5 * MiB, 7) == bytes(7)  # stale: its L1/L2 are from before
    # what the end of an incoming migration does to the machine's drives, through
    # the accounting filter every drive has above its format node
    filtered = AccountingNode(new, lambda *a: None)
    machine = SimpleNamespace(block=SimpleNamespace(drives={"d0": SimpleNamespace(
        backend=SimpleNamespace(node=filtered))}))
    _reread_disks(machine)
    assert filtered.read(5 * MiB, 7) == b"written"
    new.write(9 * MiB, b"x" * 512)  # allocates after the old one's clusters
    new.flush()
    assert old.read(5 * MiB, 7) == b"written"
    fresh = open_image(path, "qcow2")
    assert fresh.read(5 * MiB, 7) == b"written" and fresh.read(9 * MiB, 1) == b"x"
