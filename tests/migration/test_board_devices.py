"""The devices of issue 24's last blockers on a real virt board (~3 s): with
aia=aplic-imsic, a multiport virtio-serial, a balloon and a vsock the machine has no
migration blocker; its stream loads into a fresh board with the same command line; the
APLIC's pending source reaches the restored IMSIC as an MSI, and the vsock tells the
guest its streams are gone (TRANSPORT_RESET).  (A mounted 9p share's blocker:
tests/hw/test_virtio_9p.py.)"""

from __future__ import annotations

import io
import struct

from pemu.hw.intc import aplic as a
from pemu.hw.intc import imsic as i
from pemu.hw.riscv.virt import VirtBoard
from pemu.hw.virtio.balloon import VirtioBalloon
from pemu.hw.virtio.serial import VirtioSerial
from pemu.hw.virtio.vsock import EVENT_QUEUE, VirtioVsock
from pemu.migration.machine_state import blocked_reason, load_machine, save_machine
from pemu.migration.stream import StreamReader, StreamWriter, bytes_source
from pemu.qemuopts.config import SystemConfig
from tests.hw.hwtest_util import CaptureChardev
from tests.hw.virtio_driver import RAM_BASE, Driver
from tests.system import conftest as system_conftest

build_program = system_conftest.build_program  # the fixture, shared with tests/system

APLIC_M, APLIC_S = 0x0C00_0000, 0x0D00_0000
SOURCE = 40  # a wired source nothing on the board drives


def _board(kernel: str, tmp_path) -> VirtBoard:
    board = VirtBoard(SystemConfig(bios="none", kernel=kernel, ram_size=64 << 20,
                                   machine={"type": "virt", "aia": "aplic-imsic"}))
    serial = VirtioSerial(max_ports=2, id="ser0")
    serial.add_port(CaptureChardev(), 1, name="org.pemu.agent")
    board.add_virtio(serial, "ser0")
    board.add_virtio(VirtioBalloon(64 << 20, id="balloon0"), "balloon0")
    board.add_virtio(VirtioVsock(3, str(tmp_path / f"vsock{id(board)}"), id="vsock0"),
                     "vsock0")
    board.reset()
    return board


def _driver(board: VirtBoard, name: str) -> Driver:
    """A test driver on the virtio-mmio slot of device ``name``."""
    slot = next(n for n, t in enumerate(board.virtio_slots)
                if t.device is not None and t.device.id == name)
    drv = Driver(board.space, board.memmap["virtio"].slot(slot).base)
    drv.ram.next = RAM_BASE + 0x20_0000 + slot * 0x10_0000
    return drv


def _save(board: VirtBoard) -> bytes:
    out = io.BytesIO()
    save_machine(board, StreamWriter(out.write))
    return out.getvalue()


def test_aia_serial_balloon_vsock_machine_migrates(tmp_path, build_program):  # noqa: F811
    kernel = str(build_program("ticker", TICK_PERIOD=200000))
    src = _board(kernel, tmp_path)
    assert src.migration_blockers() == [] and blocked_reason(src) is None
    # the guest's view before the save: an S-level source delegated, pending while the
    # S domain is still disabled; hart 1's S file enables the identity it will get
    src.space.store(APLIC_M + a.SOURCECFG + 4 * (SOURCE - 1), 4, a.SOURCECFG_D)
    src.space.store(APLIC_S + a.SOURCECFG + 4 * (SOURCE - 1), 4, a.SM_EDGE1)
    src.space.store(APLIC_S + a.TARGET + 4 * (SOURCE - 1), 4, 0 << 18 | 33)
    src.space.store(APLIC_S + a.SETIENUM, 4, SOURCE)
    src.aplic_m.set_irq(SOURCE, True)
    s_file = src.imsics[1].files[0]
    s_file.write_indirect(i.ISELECT_EIE0, 1 << 33)
    s_file.write_indirect(i.ISELECT_EIDELIVERY, 1)
    src.harts[0].aia.siselect = i.ISELECT_EIE0
    drv = _driver(src, "vsock0")
    event = drv.bring_up(3, num=8)[EVENT_QUEUE]
    evt = drv.ram.alloc(4)
    drv.space.write(evt, b"\xff" * 4)
    event.add([(evt, 4, True)])
    event.kick()
    data = _save(src)

    dst = _board(kernel, tmp_path)
    load_machine(dst, StreamReader(bytes_source(data)))
    dst.migration_post_load()
    d_file = dst.imsics[1].files[0]
    assert d_file.topei() == 0 and dst.harts[0].aia.siselect == i.ISELECT_EIE0
    dst.space.store(APLIC_S + a.DOMAINCFG, 4, a.DOMAINCFG_IE)  # the MSI goes now
    assert d_file.topei() >> 16 == 33 and d_file.output.level
    # vsock: the event buffer the source's guest posted carries TRANSPORT_RESET
    assert dst.space.read(evt, 4) == struct.pack("<I", 0)
    assert src.space.read(evt, 4) == b"\xff" * 4  # the source's guest saw nothing
    for board in (src, dst):  # the vsocks' socket threads
        for t in board.virtio_slots:
            if isinstance(t.device, VirtioVsock):
                t.device.close()

