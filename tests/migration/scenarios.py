"""For every device that declares its state: a guest-driven setup, and a probe.

A scenario builds a *rig* (the device, what it is wired to, a fake clock) and drives it
through its registers into a state worth migrating.  ``fresh_like`` builds the rig a
migration target would have: the same configuration, the device at reset, plus what a
real migration carries outside device state (guest RAM, the guest driver's own
bookkeeping, which lives in guest RAM).  ``probe`` is what the guest sees from then
on - register reads, including reads with side effects, and what follows them - so
two rigs in the same state give the same probe, step by step.

Clocks are fakes that start at the same instant in every rig and only move inside
``probe``, so time-based registers compare exactly.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field

from pemu.accel.tcg.system_cpu import SystemTranslator
from pemu.hw.arm.cpu_vmstate import Aarch64CpuState, CounterState
from pemu.hw.char import serial16550 as s
from pemu.hw.core import Device, IRQLine
from pemu.hw.intc import aclint as a
from pemu.hw.intc import plic as p
from pemu.hw.nvme import spec as ns
from pemu.hw.nvme.controller import NvmeController
from pemu.hw.pci import config as C
from pemu.hw.pci import pcie as X
from pemu.hw.pci.bar import BAR_MEM32
from pemu.hw.pci.device import PCIDevice
from pemu.hw.pci.host import PCIeHostBridgeFunction
from pemu.hw.pci.root_port import PCIeRootPort
from pemu.hw.riscv.hart_vmstate import HartState
from pemu.hw.rtc import goldfish_rtc as g
from pemu.hw.virtio import mmio as r
from pemu.hw.virtio import net as vnet
from pemu.hw.virtio import pci as vp
from pemu.hw.virtio.console import VirtioConsole
from pemu.memory.address_space import AddressSpace
from pemu.net.client import NetClient, connect
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.csr import CSR_TABLE
from pemu.target.riscv.hart import RiscvHart
from pemu.target.riscv.isa import parse_cpu
from pemu.target.riscv.tcg_target import riscv64_target
from pemu.target.riscv.vector_state import decode_vtype
from tests.hw.hwtest_util import CaptureChardev, wait_until
from tests.hw.virtio_driver import RAM_BASE, RAM_SIZE, Driver, make_machine
from tests.migration.nvme_guest import GuestQueuePair, NvmeGuest
from tests.migration.pci_rig import MEM_WINDOW_BASE, PCIRig, VirtioPCIGuest

T0 = 1_700_000_000 * 10**9


class FakeClock:
    def __init__(self) -> None:
        self.ns = T0

    def __call__(self) -> int:
        return self.ns


@dataclass
class Rig:
    devices: list[Device]  # every device with a section, in load order
    clock: FakeClock = field(default_factory=FakeClock)
    extra: dict = field(default_factory=dict)


class Scenario:
    device_type: type[Device]

    def configured(self) -> Rig:
        raise NotImplementedError

    def fresh_like(self, rig: Rig) -> Rig:
        raise NotImplementedError

    def probe(self, rig: Rig) -> list:
        raise NotImplementedError


# -- PLIC -------------------------------------------------------------------------------
class PlicScenario(Scenario):
    device_type = p.PLIC

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        return Rig([p.PLIC(num_harts=2)])

    def configured(self) -> Rig:
        rig = self.fresh_like()
        plic = rig.devices[0]
        for n in range(1, 12):
            plic.mmio_write(p.PRIORITY_BASE + 4 * n, 4, n % 8)
        plic.mmio_write(p.PRIORITY_BASE + 4 * 40, 4, 6)
        plic.mmio_write(p.ENABLE_BASE, 4, 0b1111_1010)  # ctx 0: sources 1, 3..7
        plic.mmio_write(p.ENABLE_BASE + 4, 4, 1 << (40 - 32))  # ctx 0: source 40
        plic.mmio_write(p.ENABLE_BASE + 3 * p.ENABLE_STRIDE, 4, 0b1010_0000)  # ctx 3
        plic.mmio_write(p.CONTEXT_BASE, 4, 1)  # ctx 0 threshold
        plic.mmio_write(p.CONTEXT_BASE + 2 * p.CONTEXT_STRIDE, 4, 5)
        for n in (3, 5, 7, 9, 40):
            plic.input(n).raise_()
        plic.input(9).lower()  # pending stays latched after the line drops
        assert plic.mmio_read(p.CONTEXT_BASE + 4, 4) == 7  # claimed: priority 7 wins
        return rig

    def probe(self, rig: Rig) -> list:
        plic = rig.devices[0]
        # A new edge on a claimed source: the gateway forwards nothing until completion.
        plic.set_irq(7, False)
        plic.set_irq(7, True)
        out: list = [line.level for line in plic.outputs]
        out += [plic.mmio_read(p.PRIORITY_BASE + 4 * n, 4) for n in range(plic.num_sources)]
        out += [plic.mmio_read(p.PENDING_BASE + 4 * w, 4) for w in range(3)]
        for ctx in range(plic.num_contexts):
            out += [plic.mmio_read(p.ENABLE_BASE + ctx * p.ENABLE_STRIDE + 4 * w, 4)
                    for w in range(3)]
            out.append(plic.mmio_read(p.CONTEXT_BASE + ctx * p.CONTEXT_STRIDE, 4))
        for ctx in range(plic.num_contexts):  # claim and complete, twice, everywhere
            for _ in range(2):
                claim = p.CONTEXT_BASE + ctx * p.CONTEXT_STRIDE + 4
                n = plic.mmio_read(claim, 4)
                out.append(n)
                plic.mmio_write(claim, 4, 7)  # the source claimed before the save
                plic.mmio_write(claim, 4, n)
                out += [line.level for line in plic.outputs]
        # Completed sources whose line is still high are pending again.
        out += [plic.mmio_read(p.PENDING_BASE + 4 * w, 4) for w in range(3)]
        return out


# -- ACLINT ------------------------------------------------------------------------------
class AclintScenario(Scenario):
    device_type = a.ACLINT

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        clock = FakeClock()
        return Rig([a.ACLINT(2, use_timers=False, clock_ns=clock)], clock)

    def configured(self) -> Rig:
        rig = self.fresh_like()
        clint = rig.devices[0]
        clint.mmio_write(a.MTIME, 8, 0x1234_5678_9ABC)
        clint.mmio_write(a.MSIP_BASE + 4, 4, 1)  # hart 1's software interrupt
        clint.mmio_write(a.MTIMECMP_BASE, 8, 0x1234_5678_9ABC + 150)  # hart 0: soon
        clint.mmio_write(a.MTIMECMP_BASE + 8, 4, 0x5000)  # hart 1: low half only, due
        return rig

    def probe(self, rig: Rig) -> list:
        clint = rig.devices[0]
        out: list = []
        for step_ns in (0, 10_000, 10_000):  # 100 ticks each: hart 0's timer rises
            rig.clock.ns += step_ns
            clint.poll()
            out += [line.level for line in clint.msip + clint.mtip]
            out += [clint.mmio_read(a.MSIP_BASE + 4 * h, 4) for h in range(2)]
            out += [clint.mmio_read(a.MTIMECMP_BASE + 8 * h, 8) for h in range(2)]
            out.append(clint.mmio_read(a.MTIME, 8))
        return out


# -- Goldfish RTC -------------------------------------------------------------------------
class GoldfishScenario(Scenario):
    device_type = g.GoldfishRTC

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        clock = FakeClock()
        irq = IRQLine(name="rtc")
        return Rig([g.GoldfishRTC(irq, clock_ns=clock)], clock, {"irq": irq})

    def configured(self) -> Rig:
        rig = self.fresh_like()
        rtc = rig.devices[0]
        guest_time = 1_000_000_000 * 10**9
        rtc.mmio_write(g.TIME_HIGH, 4, guest_time >> 32)
        rtc.mmio_write(g.TIME_LOW, 4, guest_time & 0xFFFFFFFF)
        rtc.mmio_write(g.IRQ_ENABLED, 4, 1)
        rtc.mmio_write(g.ALARM_HIGH, 4, 0)
        rtc.mmio_write(g.ALARM_LOW, 4, 1)  # long past: fires at once, IRQ pending
        alarm = guest_time + 5 * 10**9
        rtc.mmio_write(g.ALARM_HIGH, 4, alarm >> 32)
        rtc.mmio_write(g.ALARM_LOW, 4, alarm & 0xFFFFFFFF)
        rtc.mmio_read(g.TIME_LOW, 4)  # latches TIME_HIGH
        rtc.mmio_write(g.ALARM_HIGH, 4, 0x77)  # staged for the next alarm write
        return rig

    def probe(self, rig: Rig) -> list:
        rtc, irq = rig.devices[0], rig.extra["irq"]
        regs = (g.TIME_HIGH, g.ALARM_LOW, g.ALARM_HIGH, g.IRQ_ENABLED, g.ALARM_STATUS)
        out: list = [rtc.mmio_read(o, 4) for o in regs] + [irq.level]
        out += [rtc.mmio_read(g.TIME_LOW, 4), rtc.mmio_read(g.TIME_HIGH, 4)]
        rig.clock.ns += 10 * 10**9  # past the alarm; rewriting the time re-checks it
        low = rtc.mmio_read(g.TIME_LOW, 4)
        rtc.mmio_write(g.TIME_HIGH, 4, rtc.mmio_read(g.TIME_HIGH, 4))
        rtc.mmio_write(g.TIME_LOW, 4, low)
        out += [rtc.mmio_read(g.ALARM_STATUS, 4), irq.level]
        rtc.mmio_write(g.CLEAR_INTERRUPT, 4, 1)
        out.append(irq.level)
        rtc.mmio_write(g.ALARM_LOW, 4, 0)  # uses the staged ALARM_HIGH
        out += [irq.level, rtc.mmio_read(g.ALARM_HIGH, 4), rtc.mmio_read(g.ALARM_STATUS, 4)]
        rtc.mmio_write(g.CLEAR_ALARM, 4, 1)  # no timer left behind
        return out


# -- 16550A ----------------------------------------------------------------------------------
class SerialScenario(Scenario):
    device_type = s.Serial16550

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        chardev = CaptureChardev()
        irq = IRQLine(name="uart")
        return Rig([s.Serial16550(chardev, irq)], extra={"chardev": chardev, "irq": irq})

    def configured(self) -> Rig:
        rig = self.fresh_like()
        uart = rig.devices[0]
        self._set_divisor(uart, 1)  # fast: the character timeout comes within a ms
        uart.mmio_write(2, 1, s.FCR_ENABLE | 0x80)  # FIFO on, trigger at 8
        uart.mmio_write(1, 1, s.IER_RDI | s.IER_THRI | s.IER_RLSI)
        uart.mmio_write(4, 1, s.MCR_OUT2 | s.MCR_RTS | s.MCR_DTR)
        uart.mmio_write(7, 1, 0x5A)
        uart.mmio_write(0, 1, ord("x"))
        rig.extra["chardev"].feed(b"hello")  # under the trigger level: only a timeout
        # Waiting on the flag, not on IIR: reading IIR would acknowledge THRE on the
        # way, depending on how soon the timeout fires.
        assert wait_until(lambda: uart.timeout_ipending)
        # Now the slowest rate, so that no further timeout fires while the test compares.
        self._set_divisor(uart, 0xFFFF)
        rig.extra["chardev"].output.clear()
        return rig

    @staticmethod
    def _set_divisor(uart: s.Serial16550, divisor: int) -> None:
        uart.mmio_write(3, 1, s.LCR_DLAB)
        uart.mmio_write(0, 1, divisor & 0xFF)
        uart.mmio_write(1, 1, divisor >> 8)
        uart.mmio_write(3, 1, 0x1B)  # 8 data bits, even parity

    def probe(self, rig: Rig) -> list:
        uart, irq = rig.devices[0], rig.extra["irq"]
        out: list = [irq.level]
        out += [uart.mmio_read(reg, 1) for reg in (2, 1, 3, 4, 5, 6, 7)]
        out += [uart.mmio_read(0, 1) for _ in range(6)]  # the FIFO, then empty
        out += [uart.mmio_read(2, 1), uart.mmio_read(5, 1), irq.level]
        uart.mmio_write(3, 1, 0x9B)
        out += [uart.mmio_read(0, 1), uart.mmio_read(1, 1)]  # the divisor
        uart.mmio_write(3, 1, 0x1B)
        uart.mmio_write(0, 1, ord("!"))
        out += [bytes(rig.extra["chardev"].output), uart.mmio_read(2, 1), irq.level]
        return out


# -- virtio-mmio with a virtio-console behind it -------------------------------------------
class VirtioConsoleScenario(Scenario):
    """Both sections of a virtio device: the transport's and the console's own."""

    device_type = r.VirtioMMIO

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        chardev = CaptureChardev()
        console = VirtioConsole(chardev)
        space, transport, irq = make_machine(console)
        new = Rig([transport, console], extra={"chardev": chardev, "irq": irq,
                                              "drv": Driver(space), "space": space})
        if rig is not None:
            # What migrates besides device state: guest RAM, and with it the guest
            # driver's bookkeeping (here kept by the test's driver object).
            space.write(RAM_BASE, rig.extra["space"].read(RAM_BASE, RAM_SIZE))
            new.extra["drv"].ram.next = rig.extra["drv"].ram.next
            new.extra["queues"] = []
            for q in rig.extra["queues"]:
                q2 = copy.copy(q)
                q2.drv, q2.free = new.extra["drv"], list(q.free)
                new.extra["queues"].append(q2)
        return new

    def configured(self) -> Rig:
        rig = self.fresh_like()
        drv = rig.extra["drv"]
        rx, tx = rig.extra["queues"] = drv.bring_up(2, num=8)
        buf = drv.ram.alloc(4)
        rx.add([(buf, 4, True)])
        rx.kick()
        rig.extra["chardev"].feed(b"0123456789")  # 4 bytes fit, 6 wait in the device
        assert rx.get_used() == [(0, 4)]
        drv.w32(r.QUEUE_SEL, 1)
        drv.w32(r.DEVICE_FEATURES_SEL, 1)
        return rig

    def probe(self, rig: Rig) -> list:
        drv, (rx, tx) = rig.extra["drv"], rig.extra["queues"]
        chardev, irq = rig.extra["chardev"], rig.extra["irq"]
        regs = (r.DEVICE_FEATURES, r.STATUS, r.INTERRUPT_STATUS, r.CONFIG_GENERATION,
                r.QUEUE_NUM_MAX, r.QUEUE_READY, r.QUEUE_DESC_LOW, r.QUEUE_DRIVER_LOW,
                r.QUEUE_DEVICE_LOW)
        out: list = [irq.level] + [drv.r32(o) for o in regs]
        drv.w32(r.QUEUE_SEL, 0)
        out += [drv.r32(o) for o in regs]
        out.append(drv.ack_interrupts())
        buf = drv.ram.alloc(16)
        rx.add([(buf, 16, True)])
        rx.kick()  # the 6 pending bytes go into the new buffer
        out += [rx.get_used(), drv.space.read(buf, 6), irq.level]
        msg = drv.ram.alloc(3)
        drv.space.write(msg, b"ok\n")
        tx.add([(msg, 3, False)])
        tx.kick()
        out += [tx.get_used(), bytes(chardev.output), drv.ack_interrupts()]
        return out


# -- virtio-mmio with a virtio-net behind it --------------------------------------------
class FrameSink(NetClient):
    def __init__(self) -> None:
        super().__init__("sink")
        self.got: list[bytes] = []

    def receive(self, frame: bytes) -> bool:
        self.got.append(frame)
        return True


NET_MAC = bytes.fromhex("525400000042")
NET_GROUP = bytes.fromhex("01005e000001")


class VirtioNetScenario(Scenario):
    """The receive filter and MAC the driver set through the control queue, and the
    link state, survive; so do the transport's three queues."""

    device_type = vnet.VirtioNet

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        nic = vnet.VirtioNet(NET_MAC)
        sink = FrameSink()
        connect(nic, sink)
        space, transport, irq = make_machine(nic)
        new = Rig([transport, nic], extra={"sink": sink, "irq": irq, "drv": Driver(space),
                                           "space": space})
        if rig is not None:
            space.write(RAM_BASE, rig.extra["space"].read(RAM_BASE, RAM_SIZE))
            new.extra["drv"].ram.next = rig.extra["drv"].ram.next
            new.extra["queues"] = []
            for q in rig.extra["queues"]:
                q2 = copy.copy(q)
                q2.drv, q2.free = new.extra["drv"], list(q.free)
                new.extra["queues"].append(q2)
        return new

    @staticmethod
    def _control(drv: Driver, cq, request: bytes) -> None:
        req, ack = drv.ram.alloc(len(request)), drv.ram.alloc(1)
        drv.space.write(req, request)
        cq.add([(req, len(request), False), (ack, 1, True)])
        cq.kick()
        assert cq.get_used() and drv.space.read(ack, 1) == bytes([vnet.CTRL_OK])

    def configured(self) -> Rig:
        rig = self.fresh_like()
        drv = rig.extra["drv"]
        rx, tx, cq = rig.extra["queues"] = drv.bring_up(3, num=8)
        self._control(drv, cq, bytes([vnet.CTRL_RX, vnet.CTRL_RX_PROMISC, 0]))
        table = (1).to_bytes(4, "little") + bytes.fromhex("525400000099") + \
            (1).to_bytes(4, "little") + NET_GROUP
        self._control(drv, cq, bytes([vnet.CTRL_MAC, vnet.CTRL_MAC_TABLE_SET]) + table)
        self._control(drv, cq, bytes([vnet.CTRL_MAC, vnet.CTRL_MAC_ADDR_SET]) +
                      bytes.fromhex("525400000077"))
        return rig

    def probe(self, rig: Rig) -> list:
        drv, (rx, tx, _) = rig.extra["drv"], rig.extra["queues"]
        sink, irq = rig.extra["sink"], rig.extra["irq"]
        out: list = [irq.level, [drv.config(i, 1) for i in range(10)]]
        bufs = [drv.ram.alloc(128) for _ in range(4)]
        for b in bufs:
            rx.add([(b, 128, True)])
        rx.kick()
        for dest in (NET_GROUP, bytes.fromhex("525400000001"), bytes.fromhex("525400000077"),
                     bytes.fromhex("525400000099"), bytes.fromhex("01005e000002")):
            sink.send(dest + NET_MAC + b"\x08\x00" + bytes(50))
        out += [rx.get_used(), drv.ack_interrupts()]
        msg = drv.ram.alloc(vnet.HDR_SIZE + 60)
        drv.space.write(msg + vnet.HDR_SIZE, b"\xff" * 6 + bytes(54))
        tx.add([(msg, vnet.HDR_SIZE + 60, False)])
        tx.kick()
        out += [tx.get_used(), len(sink.got)]
        return out


# -- a RISC-V hart (its declaration is on hw/riscv/hart_vmstate.HartState) --------------
class HartScenario(Scenario):
    device_type = HartState
    CSRS = {0x300: 0x0000_0000_0000_6AAA, 0x302: 0xB1FF, 0x303: 0x222, 0x304: 0xAAA,
            0x305: 0x8000_0101, 0x306: 7, 0x30A: 1 << 63, 0x340: 0x1122, 0x341: 0x8000_1234,
            0x342: 0x8000_0000_0000_0009, 0x343: 0x55, 0x105: 0x8000_2001, 0x106: 5,
            0x140: 0x3344, 0x141: 0x8000_5678, 0x142: 13, 0x143: 0x66, 0x144: 2,
            0x14D: 0x1234_5678_9ABC + 500, 0x180: (8 << 60) | 0x80123, 0x3A0: 0x1F,
            0x3B0: 0x2000_03FF, 0xB00: 0x9999}
    # H: the hypervisor and VS registers (henvcfg.STCE after menvcfg's: vstimecmp
    # drives VSTIP, which the probe's mip shows)
    CSRS.update({0x600: (1 << 7) | (1 << 21), 0x602: 0x100, 0x603: 0x44, 0x645: 0x4,
                 0x606: 2, 0x60A: 1 << 63, 0x605: 77, 0x24D: 0x1234_5678_9ABC + 400,
                 0x680: (8 << 60) | 0x80124, 0x200: 0x122, 0x205: 0x8000_3000,
                 0x241: 0x8000_9abc, 0x242: 8, 0x280: (8 << 60) | 0x80125, 0x34B: 0x123})
    # pointer masking: the PMM fields (mseccfg's own, version 2), hstatus.HUPMM
    CSRS.update({0x747: 3 << 32, 0x30A: 1 << 63 | 2 << 32, 0x10A: 3 << 32,
                 0x60A: 1 << 63 | 2 << 32, 0x600: (1 << 7) | (1 << 21) | (2 << 48)})

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        clock = FakeClock()
        space = AddressSpace("memory")
        dram = space.add_ram("ram", RAM_BASE, RAM_SIZE)
        # with V: the vector registers and CSRs travel too
        isa = parse_cpu("rv64,v=on,vlen=256,h=on,smmpm=on,smnpm=on,ssnpm=on")
        translator = SystemTranslator(space, dram, riscv64_target(isa))
        hart = RiscvHart(0, translator, space, lambda: clock.ns // 100, threading.Event(),
                         isa)
        hart.reset(RAM_BASE)
        return Rig([HartState(hart)], clock)

    def configured(self) -> Rig:
        rig = self.fresh_like()
        hart = rig.devices[0].hart
        for i in range(1, 32):
            hart.state.set_x(i, 0x1000 * i + 7)
            hart.state.set_f(i, 0xFFFF_FFFF_0000_0000 | i)
        hart.state.pc = RAM_BASE + 0x444
        hart.slots[rv.FFLAGS], hart.slots[rv.FRM] = 0x11, 2
        hart.slots[rv.RES_ADDR], hart.slots[rv.RES_VALUE] = RAM_BASE + 0x80, 42
        for number, value in self.CSRS.items():
            CSR_TABLE[number].write(hart, value)
        hart.ps.set_priv(1)
        hart.ps.set_virt(True)  # in the guest (VS-mode)
        hart.ps.waiting = True
        vector = hart.state.vector
        vector.set_register_bytes(bytes((i * 7 + 3) & 0xFF for i in range(32 * vector.vlenb)))
        vector.vtype, vector.vl, vector.vstart = decode_vtype(0xD1), 9, 3
        vector.vxrm, vector.vxsat = 2, 1
        return rig

    def probe(self, rig: Rig) -> list:
        hart = rig.devices[0].hart
        out = [hart.ps.virt, hart.mmu.ctx.key]  # V=1: the guest's address space
        hart.ps.set_priv(3)  # every CSR readable
        out += [hart.state.x(i) for i in range(32)] + [hart.state.f(i) for i in range(32)]
        out += [hart.state.pc, hart.slots[rv.FFLAGS], hart.slots[rv.FRM],
                hart.slots[rv.RES_ADDR], hart.slots[rv.RES_VALUE], hart.ps.waiting]
        out += [CSR_TABLE[n].read(hart) for n in sorted(self.CSRS)]
        vector = hart.state.vector
        out += [vector.register_bytes(), vector.vtype, vector.vl, vector.vstart, vector.vxrm,
                vector.vxsat]
        for step_ns in (0, 100_000):  # 1000 ticks: stimecmp falls due, STIP rises
            rig.clock.ns += step_ns
            out.append(hart.ps.mip())
        return out


# -- virtio-pci: a console behind MSI-X, on an ECAM host -----------------------------------
MSG_RX, MSG_TX, MSG_CONFIG = (RAM_BASE + 0xF000 + 0x10 * n for n in range(3))


class VirtioPCIScenario(Scenario):
    """Three sections: the function (config space with the BARs, MSI-X table and PBA),
    the virtio-pci transport, the console.  The host bridge's function travels too."""

    device_type = vp.VirtioPCI

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        pci = PCIRig()
        chardev = CaptureChardev()
        console = VirtioConsole(chardev)
        fn = vp.VirtioPCI(pci.space, console, id="con")
        pci.host.root_bus.plug(fn, 1 << 3)
        pci.host.reset()
        bridge = pci.host.root_bus.find(0)
        new = Rig([bridge, fn, fn.transport, console],
                  extra={"pci": pci, "chardev": chardev, "drv": VirtioPCIGuest(pci, 1 << 3)})
        if rig is not None:
            pci.copy_ram_from(rig.extra["pci"])
            new.extra["queues"] = []
            for q in rig.extra["queues"]:
                q2 = copy.copy(q)
                q2.drv, q2.free = new.extra["drv"], list(q.free)
                new.extra["queues"].append(q2)
        return new

    def configured(self) -> Rig:
        rig = self.fresh_like()
        pci, drv, fn = rig.extra["pci"], rig.extra["drv"], rig.devices[1]
        drv.program_bars()
        pci.cfg_w(0, C.COMMAND, 2, C.COMMAND_MEMORY)  # the bridge function's own state
        drv.msix_entry(0, MSG_RX, 0x11, masked=False)
        drv.msix_entry(1, MSG_TX, 0x22, masked=True)  # tx completions wait in the PBA
        drv.msix_entry(2, MSG_CONFIG, 0x33, masked=False)
        pci.cfg_w(1 << 3, fn.msix.offset + 2, 2, 0x8000)  # MSI-X enable
        rx, tx = rig.extra["queues"] = drv.bring_up(2, vectors=[0, 1])
        drv.w(vp.CONFIG_MSIX_VECTOR, 2, 2)
        buf = drv.ram.alloc(4)
        rx.add([(buf, 4, True)])
        rx.kick()
        rig.extra["chardev"].feed(b"0123456789")  # 4 bytes fit, 6 wait in the device
        assert rx.get_used() == [(0, 4)]
        msg = drv.ram.alloc(3)
        drv.space.write(msg, b"hi\n")
        tx.add([(msg, 3, False)])
        tx.kick()
        assert tx.get_used() == [(0, 0)] and drv.space.load(MSG_TX, 4) == 0
        drv.w(vp.QUEUE_SELECT, 2, 1)
        return rig

    def probe(self, rig: Rig) -> list:
        pci, drv, (rx, _) = rig.extra["pci"], rig.extra["drv"], rig.extra["queues"]
        fn = rig.devices[1]
        out: list = [pci.cfg_r(0, C.COMMAND, 2)]
        out += [pci.cfg_r(1 << 3, off, 4) for off in range(0, 0x40, 4)]
        out.append(pci.cfg_r(1 << 3, fn.msix.offset, 4))
        # the BARs answer where the guest put them (the mapping is re-derived on load)
        out += [drv.r(off, 2) for off in (vp.QUEUE_SELECT, vp.QUEUE_SIZE,
                                          vp.QUEUE_MSIX_VECTOR, vp.CONFIG_MSIX_VECTOR)]
        out += [drv.r(vp.DEVICE_STATUS, 1), drv.r(vp.QUEUE_DESC, 8)]
        out += [drv.space.load(drv.bar1 + 0x800, 4), drv.read_isr(), drv.read_isr()]
        for addr in (MSG_RX, MSG_TX):
            drv.space.store(addr, 4, 0)
        buf = drv.ram.alloc(16)
        rx.add([(buf, 16, True)])
        rx.kick()  # the 6 pending bytes go into the new buffer: vector 0 fires
        out += [rx.get_used(), drv.space.read(buf, 6), drv.space.load(MSG_RX, 4)]
        drv.space.store(drv.bar1 + 16 + 12, 4, 0)  # unmask vector 1: the pending one fires
        out += [drv.space.load(MSG_TX, 4), drv.space.load(drv.bar1 + 0x800, 4)]
        return out


# -- pcie-root-port: a card in its slot, an unplug request the guest has not answered -----
class _Scratch:
    def __init__(self) -> None:
        self.data = bytearray(0x100)

    def mmio_read(self, offset: int, size: int) -> int:
        return int.from_bytes(self.data[offset:offset + size], "little")

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.data[offset:offset + size] = value.to_bytes(size, "little")


class RootPortScenario(Scenario):
    """The root port's slot (hot-plug enables, events, INTx) and a card behind it whose
    BAR decodes only through the port: both re-derived on load."""

    device_type = PCIeRootPort
    CARD_BAR = MEM_WINDOW_BASE + 0x30_0000
    PORT = 2 << 3

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        pci = PCIRig()
        port = PCIeRootPort("rp0", slot=5)
        pci.host.root_bus.plug(port, self.PORT)
        card = PCIDevice("card")
        scratch = _Scratch()
        card.add_bar(0, 0x100, BAR_MEM32, scratch)
        card.set_interrupt_pin(1)
        port.secondary.plug(card, 0)
        removed: list = []
        port.on_removed = lambda dev: removed.append(dev.id)
        pci.host.reset()
        if rig is not None:
            scratch.data[:] = rig.extra["scratch"].data  # the card's memory: not state
        return Rig([pci.host.root_bus.find(0), port, card],
                   extra={"pci": pci, "removed": removed, "scratch": scratch})

    def configured(self) -> Rig:
        rig = self.fresh_like()
        pci, port = rig.extra["pci"], rig.devices[1]
        pci.cfg_w(self.PORT, C.PRIMARY_BUS, 4, 0x00_01_01_00)  # primary 0, secondary 1
        pci.cfg_w(self.PORT, C.COMMAND, 2, C.COMMAND_MEMORY)
        pci.cfg_w(0, C.BAR0, 4, self.CARD_BAR, bus=1)
        pci.cfg_w(0, C.COMMAND, 2, C.COMMAND_MEMORY, bus=1)
        pci.host.mem.lookup(self.CARD_BAR - MEM_WINDOW_BASE, 4)
        pci.space.store(self.CARD_BAR + 8, 4, 0xCAFE)
        pci.cfg_w(0, C.COMMAND, 2, C.COMMAND_MEMORY | C.COMMAND_INTX_DISABLE, bus=1)
        rig.devices[2].set_irq(True)  # the card's level, kept off the wire by Disable
        ctl = port.exp + X.SLTCTL
        pci.cfg_w(self.PORT, ctl, 2, X.SLTCTL_HPIE | X.SLTCTL_ABPE | X.SLTCTL_PDCE)
        port.request_unplug()  # Attention Button: INTx (no MSI enabled)
        assert any(line.level for line in pci.intx)
        return rig

    def probe(self, rig: Rig) -> list:
        pci, port = rig.extra["pci"], rig.devices[1]
        sta, ctl = port.exp + X.SLTSTA, port.exp + X.SLTCTL
        out: list = [[line.level for line in pci.intx], pci.cfg_r(self.PORT, sta, 2),
                     port.unplug_requested, pci.cfg_r(self.PORT, C.SECONDARY_BUS, 1)]
        out += [pci.cfg_r(0, C.STATUS, 2, bus=1), pci.space.load(self.CARD_BAR + 8, 4)]
        pci.cfg_w(0, C.COMMAND, 2, C.COMMAND_MEMORY, bus=1)  # the card's INTx goes out
        out.append([line.level for line in pci.intx])
        pci.cfg_w(self.PORT, sta, 2, X.SLTSTA_ABP)  # the guest acknowledges the button
        out.append([line.level for line in pci.intx])
        pci.cfg_w(self.PORT, ctl, 2, X.SLTCTL_HPIE | X.SLTCTL_PDCE | X.SLTCTL_PCC
                  | X.SLTCTL_PIC_OFF)
        out += [list(rig.extra["removed"]), pci.cfg_r(self.PORT, sta, 2),
                [line.level for line in pci.intx]]
        return out


# -- nvme: admin and I/O queues, a full CQ with a completion waiting, an AER outstanding ---
MSG_IO, MSG_ADMIN = RAM_BASE + 0xF100, RAM_BASE + 0xF110


class NvmeScenario(Scenario):
    device_type = NvmeController
    DEVFN = 3 << 3

    def fresh_like(self, rig: Rig | None = None) -> Rig:
        pci = PCIRig()
        ctrl = NvmeController(pci.space, "mig-0", max_ioqpairs=4, msix_qsize=5, id="nvme0")
        pci.host.root_bus.plug(ctrl, self.DEVFN)
        pci.host.reset()
        new = Rig([pci.host.root_bus.find(0), ctrl],
                  extra={"pci": pci, "guest": NvmeGuest(pci, self.DEVFN)})
        if rig is not None:
            pci.copy_ram_from(rig.extra["pci"])
            new.extra["guest"].cid = rig.extra["guest"].cid
            new.extra["queues"] = [copy.copy(q) for q in rig.extra["queues"]]
        return new

    def configured(self) -> Rig:
        rig = self.fresh_like()
        guest, ctrl = rig.extra["guest"], rig.devices[1]
        guest.map_bar()
        guest.msix_entry(0, MSG_ADMIN, 0x70, masked=False)
        guest.msix_entry(1, MSG_IO, 0x71, masked=True)  # I/O completions wait in the PBA
        admin = guest.enable(ctrl.msix.offset)
        io = GuestQueuePair(rig.extra["pci"], 1, 4)
        for opcode, prp, cdw10, cdw11 in (
                (ns.ADM_SET_FEATURES, 0, ns.FEAT_TEMP_THRESHOLD, 0x160),
                (ns.ADM_CREATE_CQ, io.cq, 3 << 16 | 1, 1 << 16 | 3),
                (ns.ADM_CREATE_SQ, io.sq, 3 << 16 | 1, 1 << 16 | 1)):
            guest.submit(admin, opcode, prp1=prp, cdw10=cdw10, cdw11=cdw11)
            assert [c[1] for c in guest.reap(admin)] == [0]
        guest.submit(admin, ns.ADM_ASYNC_EVENT)  # outstanding until an event or reset
        # four reads of a namespace that does not exist: 3 fit the 4-entry CQ, 1 waits
        for _ in range(3):
            guest.submit(io, ns.NVM_READ, nsid=1)
        assert len(guest.reap(io, ring=False)) == 3
        guest.submit(io, ns.NVM_READ, nsid=1)
        rig.extra["queues"] = [admin, io]
        return rig

    def probe(self, rig: Rig) -> list:
        guest, (admin, io) = rig.extra["guest"], rig.extra["queues"]
        space = rig.extra["pci"].space
        out: list = [guest.reg(o, 4) for o in (ns.REG_CC, ns.REG_CSTS, ns.REG_AQA)]
        out += [guest.reg(ns.REG_ASQ, 8), guest.pba()]
        space.store(MSG_ADMIN, 4, 0)
        guest.submit(admin, ns.ADM_GET_FEATURES, cdw10=ns.FEAT_TEMP_THRESHOLD)
        out += [guest.reap(admin), space.load(MSG_ADMIN, 4)]
        space.store(MSG_IO, 4, 0)
        guest.doorbell(1, True, 3)  # room in the CQ: the waiting completion goes in
        out += [guest.reap(io), guest.pba()]
        guest.msix_entry(1, MSG_IO, 0x71, masked=False)
        out.append(space.load(MSG_IO, 4))
        guest.submit(io, ns.NVM_READ, nsid=1)
        out.append(guest.reap(io))
        for _ in range(4):  # the AER limit counts the outstanding request
            guest.submit(admin, ns.ADM_ASYNC_EVENT)
        out.append(guest.reap(admin))
        return out


SCENARIOS: dict[type[Device], Scenario] = {
    sc.device_type: sc for sc in (PlicScenario(), AclintScenario(), GoldfishScenario(),
                                  SerialScenario(), VirtioConsoleScenario(),
                                  VirtioNetScenario(), HartScenario(), VirtioPCIScenario(),
                                  RootPortScenario(), NvmeScenario())}
# Scenarios kept in modules of their own (they import this one for Rig and Scenario).
from pemu.hw.char.pl011 import Pl011  # noqa: E402
from pemu.hw.intc.gicv2 import Gicv2  # noqa: E402
from pemu.hw.intc.gicv3 import Gicv3  # noqa: E402
from pemu.hw.rtc.pl031 import Pl031  # noqa: E402
from pemu.hw.x86.kvm_chips import KVMChipsState  # noqa: E402
from pemu.hw.x86.vcpu_vmstate import X86VCPUState  # noqa: E402
from tests.migration.aia_scenarios import AplicScenario, ImsicScenario  # noqa: E402
from tests.migration.storage_scenarios import AhciScenario  # noqa: E402
from tests.migration.virtio_scenarios import (  # noqa: E402
    BalloonScenario,
    SerialPortsScenario,
    VirtioScsiScenario,
)

SCENARIOS.update({sc.device_type: sc for sc in (AplicScenario(), ImsicScenario(),
                                                BalloonScenario(), SerialPortsScenario(),
                                                AhciScenario(), VirtioScsiScenario())})
# Devices whose section only travels as part of another scenario's rig.
COVERED_BY = {VirtioConsole: r.VirtioMMIO, vp.VirtioPCITransport: vp.VirtioPCI,
              PCIeHostBridgeFunction: vp.VirtioPCI, PCIDevice: PCIeRootPort}
# Devices whose round trips are tested beside them: KVM's state lives in the kernel (a
# round trip needs /dev/kvm; those tests skip where KVM is absent), and the Arm virt
# board's devices are tested with their own register-level rigs.
TESTED_ELSEWHERE = {X86VCPUState: "tests/kvm/test_vcpu_state.py",
                    KVMChipsState: "tests/kvm/test_vcpu_state.py",
                    Gicv2: "tests/hw/test_arm_gicv2.py", Gicv3: "tests/hw/test_arm_gicv3.py",
                    Pl011: "tests/hw/test_arm_pl011.py", Pl031: "tests/hw/test_arm_pl031.py",
                    Aarch64CpuState: "tests/aarch64/system/test_a64_virt_migration.py",
                    CounterState: "tests/aarch64/system/test_a64_virt_migration.py"}
