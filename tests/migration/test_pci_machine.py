"""A virt machine with PCI devices through the whole machine stream (~2 s): a guest
driver (register pokes, no guest kernel) brings up a virtio-blk-pci disk behind a
pcie-root-port and an MSI-X table, writes to it; the machine is saved, loaded into a
fresh board with the same command line, and the restored disk goes on where it was."""

from __future__ import annotations

import io
import struct

import pytest

from pemu.block import open_drive
from pemu.hw.ahci.hba import AhciController
from pemu.hw.pci import config as C
from pemu.hw.pci.root_port import PCIeRootPort
from pemu.hw.riscv.virt import VirtBoard
from pemu.hw.virtio import pci as vp
from pemu.hw.virtio.blk import VirtioBlk
from pemu.hw.virtio.console import VirtioConsole
from pemu.hw.virtio.serial import VirtioSerial
from pemu.migration import MigrationError
from pemu.migration.machine_state import blocked_reason, load_machine, save_machine
from pemu.migration.stream import StreamReader, StreamWriter, bytes_source
from pemu.qemuopts.config import SystemConfig
from tests.hw.hwtest_util import CaptureChardev
from tests.hw.virtio_driver import RAM_BASE, GuestRAM
from tests.migration.pci_rig import VirtioPCIGuest
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program  # the fixture, shared with tests/system

PORT_DEVFN = 1 << 3
MSG = RAM_BASE + 0x20_0000  # where the disk's MSI-X vector 0 writes
T_OUT, T_IN, S_OK = 1, 0, 0


class BoardPCI:
    """What VirtioPCIGuest needs, on a real board: config space and guest memory."""

    def __init__(self, board: VirtBoard) -> None:
        self.space = board.space
        self.host = board.pci
        self.ram = GuestRAM(board.space)
        self.ram.next = RAM_BASE + 0x10_0000

    def cfg_w(self, devfn: int, off: int, size: int, value: int, bus: int = 0) -> None:
        self.host.config_write(bus, devfn, off, size, value)

    def cfg_r(self, devfn: int, off: int, size: int, bus: int = 0) -> int:
        return self.host.config_read(bus, devfn, off, size)


def _bare(kernel: str) -> VirtBoard:
    """A board the test never runs (its harts only hold a program to boot)."""
    return VirtBoard(SystemConfig(bios="none", kernel=kernel, ram_size=64 << 20))


def _board(disk: tuple[str, str]) -> tuple[VirtBoard, VirtioBlk]:
    """The same "command line" every time: -device pcie-root-port,id=rp0 and
    -device virtio-blk-pci,bus=rp0 on a raw disk."""
    kernel, path = disk
    board = _bare(kernel)
    board.add_pci(PCIeRootPort("rp0", slot=1), "rp0", {"addr": "1"})
    blk = VirtioBlk(open_drive({"file": path, "format": "raw"}), serial="d0")
    function = vp.VirtioPCI(board.space, blk, id="disk", type_name="virtio-blk-pci")
    board.add_pci(function, "disk", {"bus": "rp0"})
    board.reset()
    return board, blk


def _request(guest: VirtioPCIGuest, q, blk: VirtioBlk, rtype: int, sector: int,
             data: bytes = b"", in_len: int = 0) -> tuple[int, bytes]:
    hdr = guest.ram.alloc(16)
    guest.space.write(hdr, struct.pack("<IIQ", rtype, 0, sector))
    bufs = [(hdr, 16, False)]
    if data:
        out = guest.ram.alloc(len(data))
        guest.space.write(out, data)
        bufs.append((out, len(data), False))
    buf = guest.ram.alloc(in_len) if in_len else 0
    if in_len:
        bufs.append((buf, in_len, True))
    status = guest.ram.alloc(1)
    bufs.append((status, 1, True))
    q.set_used_event(q.avail_idx)  # EVENT_IDX: interrupt for this very request
    q.add(bufs)
    q.kick()
    blk.drain()
    assert len(q.get_used()) == 1
    return guest.space.read(status, 1)[0], guest.space.read(buf, in_len) if in_len else b""


def _bring_up(board: VirtBoard) -> tuple[BoardPCI, VirtioPCIGuest, object]:
    pci = BoardPCI(board)
    # the guest numbers the port's bus and opens its memory window; the disk is 01:00.0
    pci.cfg_w(PORT_DEVFN, C.PRIMARY_BUS, 4, 0x00_01_01_00)
    pci.cfg_w(PORT_DEVFN, C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_MASTER)
    guest = VirtioPCIGuest(pci, 0)  # type: ignore[arg-type]
    guest.rig = _OnBus1(pci)  # type: ignore[assignment]
    guest.program_bars()
    function = board.pci.find_bus("rp0").find(0)
    guest.msix_entry(0, MSG, 0x5A, masked=False)
    pci.cfg_w(0, function.msix.offset + 2, 2, 0x8000, bus=1)
    (q,) = guest.bring_up(1, vectors=[0], num=16)
    return pci, guest, q


class _OnBus1:
    """The disk's config space: bus 1, behind the port."""

    def __init__(self, pci: BoardPCI) -> None:
        self.pci = pci

    def cfg_w(self, devfn: int, off: int, size: int, value: int) -> None:
        self.pci.cfg_w(devfn, off, size, value, bus=1)


def _save(board: VirtBoard) -> bytes:
    out = io.BytesIO()
    save_machine(board, StreamWriter(out.write))
    return out.getvalue()


@pytest.fixture
def disk(tmp_path, build_program):  # noqa: F811 - the fixture above
    path = tmp_path / "disk.raw"
    path.write_bytes(bytes(1 << 20))
    return str(build_program("ticker", TICK_PERIOD=200000)), str(path)


def test_a_pci_disk_goes_on_in_a_fresh_board(disk):
    src, blk = _board(disk)
    assert blocked_reason(src) is None
    _, guest, q = _bring_up(src)
    assert _request(guest, q, blk, T_OUT, 2, b"before".ljust(512, b"\0"))[0] == S_OK
    assert src.space.load(MSG, 4) == 0x5A  # the completion came as an MSI-X message
    data = _save(src)

    dst, blk2 = _board(disk)
    load_machine(dst, StreamReader(bytes_source(data)))
    dst.migration_post_load()
    # the guest's view of the restored function: same config space, BARs decode where
    # the guest put them (through the port's re-derived forwarding), same queue
    pci2 = BoardPCI(dst)
    for devfn, bus in ((PORT_DEVFN, 0), (0, 1)):
        assert [pci2.cfg_r(devfn, o, 4, bus) for o in range(0, 0x100, 4)] == \
            [BoardPCI(src).cfg_r(devfn, o, 4, bus) for o in range(0, 0x100, 4)]
    guest2 = VirtioPCIGuest(pci2, 0)  # type: ignore[arg-type]
    assert guest2.r(vp.QUEUE_SIZE, 2) == 16 and guest2.r(vp.QUEUE_ENABLE, 2) == 1
    assert guest2.r(vp.QUEUE_DESC, 8) == q.desc
    # the guest driver's bookkeeping is in RAM, which came along; the next request
    # takes the next ring slot and its completion fires the restored MSI-X vector
    pci2.ram.next = guest.ram.next
    q.drv = guest2
    dst.space.store(MSG, 4, 0)
    status, back = _request(guest2, q, blk2, T_IN, 2, in_len=512)
    assert (status, back[:6]) == (S_OK, b"before")
    assert dst.space.load(MSG, 4) == 0x5A
    assert struct.unpack("<H", dst.space.read(q.used + 2, 2))[0] == 2


def test_a_board_without_the_pci_disk_refuses_the_stream(disk):
    src, _ = _board(disk)
    _bring_up(src)
    data = _save(src)
    bare = _bare(disk[0])
    bare.add_pci(PCIeRootPort("rp0", slot=1), "rp0", {"addr": "1"})
    bare.reset()
    with pytest.raises(MigrationError, match="slot presence differs"):
        load_machine(bare, StreamReader(bytes_source(data)))


def test_undeclared_pci_devices_still_block(disk):
    board, _ = _board(disk)
    console = VirtioConsole(CaptureChardev())
    board.add_pci(vp.VirtioPCI(board.space, console, id="con"), "con", {})
    assert blocked_reason(board) is None  # virtio-console's state is declared
    board.add_pci(vp.VirtioPCI(board.space, VirtioSerial(), id="ser0"), "ser0", {})
    assert blocked_reason(board) is None  # multiport virtio-serial's too
    ahci = AhciController(board.space, id="sata0")
    board.add_pci(ahci, "sata0", {})
    assert blocked_reason(board) is None  # and ich9-ahci's (issue 24)
    ahci.vmstate = None  # a function whose state is not declared still blocks
    assert blocked_reason(board) == "State blocked by non-migratable device 'sata0'"
