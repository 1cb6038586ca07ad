"""The monitor's view of a RISC-V TCG board (``virt``, ``spike``).

The board runs its harts on one thread, and each hart asks ``should_stop()`` whenever
its exit-request flag is up.  Pausing uses exactly that hook: the adapter puts a gate
in front of every hart's ``should_stop`` and raises the flags; the hart thread then
waits in the gate until ``cont``.  The board's own stop (quit, power-off) always opens
the gate, so a paused machine can still be shut down.  A hart reset while paused
keeps the hart paused, as ``system_reset`` does in QEMU.

A debugger may resume only some harts (gdb's ``vCont;c:N``): ``cont_harts`` holds
the others in the gate (or, with one thread for all, out of the round-robin) until
the next pause.
"""

from __future__ import annotations

import threading
import time

from pemu.hw.riscv.board import BoardError
from pemu.hw.virtio.serial import SerialPort, VirtioSerial
from pemu.memory.address_space import GuestMemoryError
from pemu.monitor.balloon_commands import connect_balloon_events
from pemu.monitor.errors import QMPError
from pemu.monitor.machine import SHUTDOWN, CPUInfo, MonitoredMachine
from pemu.monitor.storage_drives import (
    STORAGE_UNITS,
    UNATTACHED,
    VIRTIO_DISK,
    storage_units,
    unit_qdev,
)
from pemu.qemuopts.keyval import OptionError
from pemu.target.riscv import cpu_state as rv
from pemu.target.riscv.cpu_state import ABI_NAMES
from pemu.target.riscv.exceptions import RiscvTrap
from pemu.target.riscv.mmu import ACCESS_READ, walk
from pemu.target.riscv.priv import MSTATUS_MXR

PARK_WAIT = 1.0  # harts asleep in WFI never reach the gate; they are stopped anyway
_PRIV_NAMES = {0: "U", 1: "S", 3: "M"}


class RiscvBoardMonitor(MonitoredMachine):
    target = "riscv64"
    accel = "tcg"
    cpu_type = "rv64-riscv-cpu"

    def __init__(self, board, cfg) -> None:
        super().__init__(name=cfg.name, start_stopped=cfg.start_stopped)
        self.board = board
        self.migratable = board
        self.cfg = cfg
        self.machine_type = cfg.machine.get("type", "virt")
        self.chardevs = getattr(board, "chardevs", None)
        self.network = getattr(board, "network", None)  # pemu/net/network.py
        self.pci_host = getattr(board, "pci", None)  # pemu/hw/pci/host.py
        self._hotplugged: dict[str, str] = {}  # device_add id -> driver
        self._hot_models: dict[str, object] = {}  # device_add id -> the device
        self._hot_drives: dict[str, str] = {}  # device_add id -> its blockdev-add node
        self._hot_legacy_drives: dict[str, str] = {}  # device_add id -> its -drive id
        self._open = threading.Event()
        # notified whenever a hart may pass the gate now (cont, a hold lifted, quit)
        self._gate_changed = threading.Condition()
        self._parked = threading.Event()  # a hart reached the gate
        self._parked_harts: set = set()  # the harts waiting in the gate now
        self._parked_lock = threading.Lock()
        self.main_thread_id = threading.get_native_id()
        if not cfg.start_stopped:
            self._open.set()
        for hart in board.harts:
            self._install_gate(hart)
        self._register_drives()
        ctx = getattr(board, "device_context", None)
        if ctx is not None:  # device_add drive=NODE finds blockdev-add's nodes
            ctx.find_block_node = self.block.node_backend
        if cfg.no_shutdown:
            board.on_poweroff_stay = self._poweroff_stay
        self._watch_serial_ports()
        connect_balloon_events(self)
        if cfg.start_stopped:
            self._kick_harts()  # -S: stop before the first instruction

    def _watch_serial_ports(self) -> None:
        """QMP VSERPORT_CHANGE when the guest opens or closes a virtio-serial port (how
        libvirt learns that the guest agent is there)."""
        ctx = getattr(self.board, "device_context", None)
        for dev in getattr(ctx, "devices", {}).values():
            serial = getattr(dev, "virtio", dev)  # a -pci device's model
            if isinstance(serial, VirtioSerial):
                serial.on_port_open = self._serial_port_changed

    def _serial_port_changed(self, port: SerialPort, is_open: bool) -> None:
        self.events.emit("VSERPORT_CHANGE", {"id": port.describe(), "open": is_open})

    # -- the gate in front of should_stop -------------------------------------------------
    def _install_gate(self, hart) -> None:
        should_stop = hart.should_stop
        reset = hart.reset
        machine = self.board.machine

        def may_pass() -> bool:
            return self._open.is_set() and not hart.held_by_debugger

        def may_leave() -> bool:
            # with one thread for all harts, a held hart leaves the gate (its run
            # ends, the round-robin skips it): the thread must run the others
            return may_pass() or machine.stopping or (
                machine.one_thread and self._open.is_set())

        def gate() -> bool:
            # a loop: a pause that follows a resume at once (migration's dirty-page
            # harvests) must not let the hart through on the resume's wake-up
            while not may_pass() and not machine.stopping:
                if machine.one_thread and self._open.is_set():
                    return True  # held: the round-robin skips it until the next pause
                with self._parked_lock:
                    self._parked_harts.add(hart)
                    self._parked.set()
                with machine.parked():  # MTTCG: the other harts reach their gates
                    with self._gate_changed:
                        while not self._gate_changed.wait_for(may_leave, 0.1):
                            pass
                with self._parked_lock:
                    self._parked_harts.discard(hart)
                    self._parked.clear()
            return should_stop()

        def reset_keeping_pause(pc: int) -> None:
            reset(pc)
            if not self._open.is_set():
                hart.slots[hart.exit_slot] = 1

        hart.should_stop = gate
        hart.reset = reset_keeping_pause

    def _kick_harts(self) -> None:
        for hart in self.board.harts:
            self.kick_cpu(hart)

    @staticmethod
    def kick_cpu(hart) -> None:  # noqa: ANN001 - the architecture's vCPU
        """Out of translated code at the next block, and out of WFI's sleep."""
        hart.ps.kick()

    def _register_drives(self) -> None:
        """Every drive a device holds, named by its -drive id, for query-block & co.:
        virtio-blk's through the transports, NVMe/ATA/SCSI units by their -device."""
        names = {}
        for n, dev in enumerate(self.cfg.devices):
            if dev.get("driver") in ("virtio-blk-device", "virtio-blk-pci") and dev.get("drive"):
                names[dev.get("id") or f"virtio{n}"] = dev["drive"]
        transports = [(t, "") for t in getattr(self.board, "virtio_slots", [])]
        if self.pci_host is not None:  # virtio-blk-pci: the function's transport, and
            # QEMU's qdev path of the virtio device inside the PCI function (libvirt
            # finds a disk's statistics by it)
            transports += [(f.transport, "/virtio-backend") for f in self.pci_host.devices()
                           if hasattr(f, "transport")]
        blockdev_nodes = {b.get("node-name") for b in self.cfg.blockdevs}
        for transport, inner in transports:
            device = getattr(transport, "device", None)
            backend = getattr(device, "backend", None)
            if backend is None or not hasattr(backend, "node"):
                continue
            dev_id = getattr(device, "id", None) or "virtio"
            drive_id = names.get(dev_id, dev_id)
            # a -blockdev drive keeps its node-name (libvirt finds its sizes by it)
            node = drive_id if drive_id in blockdev_nodes else None
            self.block.add_drive(drive_id, backend, node_name=node,
                                 qdev=f"/machine/peripheral/{dev_id}{inner}")
        context = getattr(self.board, "device_context", None)
        opened = getattr(context, "opened", {})
        for unit in storage_units(self.cfg.devices, opened):
            node = unit.drive_id if unit.drive_id in blockdev_nodes else None
            self.block.add_drive(unit.drive_id, unit.backend,  # type: ignore[arg-type]
                                 node_name=node, qdev=unit.qdev, removable=unit.removable,
                                 io_status=unit.io_status)
        removable, io_status = UNATTACHED
        for drive_id, backend in getattr(context, "idle", {}).items():
            self.block.add_drive(drive_id, backend, removable=removable, io_status=io_status)

    # -- MonitoredMachine primitives ----------------------------------------------------------
    def _pause(self) -> None:
        self._open.clear()
        self._parked.clear()
        self._hold(frozenset())  # every hart stops now: no hold outlives a pause
        self._kick_harts()
        # Harts asleep in WFI never reach the gate, and need not: the loop that would
        # wake them runs into the gate first (their exit request is up).
        # The kick is repeated: a hart leaving the gate of a pause just ended clears
        # its exit request after this one may have set it.
        deadline = time.monotonic() + PARK_WAIT
        while not self._all_parked(0.005):
            if time.monotonic() > deadline or all(h.waiting for h in self.board.harts):
                break
            self._kick_harts()

    def cont_harts(self, harts: frozenset[int]) -> None:
        """Resume only the harts at these indexes (gdb's ``vCont;c:N``): the others
        stay stopped, parked in the gate, until the next pause stops them all."""
        with self._state_lock:
            if not self.running:
                self._hold(frozenset(range(len(self.board.harts))) - harts)
        self.cont()

    def _hold(self, indexes: frozenset[int]) -> None:
        for i, hart in enumerate(self.board.harts):
            hart.held_by_debugger = i in indexes

    def _all_parked(self, timeout: float) -> bool:
        """Whether the harts are held: with one thread for all of them, one hart in
        the gate holds them all; with MTTCG every hart is in the gate or in WFI
        (a hart woken from WFI runs into the gate first: its exit request is up)."""
        if self.board.machine.one_thread:
            return self._parked.wait(timeout)
        time.sleep(timeout)
        with self._parked_lock:
            return all(h in self._parked_harts or h.waiting for h in self.board.harts)

    def _resume(self) -> None:
        self._open_gate()

    def _open_gate(self) -> None:
        with self._gate_changed:
            self._open.set()
            self._gate_changed.notify_all()

    def _reset(self) -> None:
        self.board.request_reset()

    def _powerdown(self) -> None:
        """Like QEMU's virt board: no power button, the request only makes the event."""

    def _quit(self) -> None:
        self.board.request_exit(0, "quit from the monitor")
        self._open_gate()

    def _poweroff_stay(self, code: int) -> None:
        """-no-shutdown: the guest powered off; the machine stops in run state
        ``shutdown`` (cont refuses until system_reset), as QEMU's does.  Runs on the
        hart's thread: the gate closes and the hart parks at its next exit check,
        so this must not wait for the park itself."""
        self.events.emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        with self._state_lock:
            self._open.clear()
            self._kick_harts()
            self._state = SHUTDOWN
        self.events.emit("STOP")

    def board_exited(self) -> None:
        """Call once ``board.run`` has returned: reports why, as QEMU's SHUTDOWN does."""
        why = getattr(self.board, "exit_reason", "") or ""
        if self.quit_requested.is_set():
            return
        if why.startswith("guest powered off"):
            self.events.emit("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        elif "reset" in why:
            self.events.emit("SHUTDOWN", {"guest": True, "reason": "guest-reset"})
        elif why.startswith("signal"):
            self.events.emit("SHUTDOWN", {"guest": False, "reason": "host-signal"})
        else:
            self.events.emit("SHUTDOWN", {"guest": False, "reason": "host-error"})

    # -- introspection ----------------------------------------------------------------------
    def cpus(self) -> list[CPUInfo]:
        return [CPUInfo(i, h.slots[rv.PC], thread_id=h.host_thread_id or self.main_thread_id,
                        halted=bool(h.ps.waiting), props={"core-id": i})
                for i, h in enumerate(self.board.harts)]

    def _hart(self, index: int):
        harts = self.board.harts
        if not 0 <= index < len(harts):
            raise QMPError(f"Invalid CPU index {index}")
        return harts[index]

    def cpu_registers(self, index: int) -> str:
        h = self._hart(index)
        ps, state = h.ps, h.state
        lines = [f" pc       {state.pc:016x}",
                 f" mhartid  {h.hartid:016x}",
                 f" priv     {_PRIV_NAMES.get(ps.priv, ps.priv)}",
                 f" mstatus  {ps.read_mstatus():016x}",
                 f" satp     {ps.satp:016x}",
                 f" mtvec    {ps.mtvec:016x}   stvec    {ps.stvec:016x}",
                 f" mepc     {ps.mepc:016x}   sepc     {ps.sepc:016x}",
                 f" mcause   {ps.mcause:016x}   mtval    {ps.mtval:016x}",
                 f" scause   {ps.scause:016x}   stval    {ps.stval:016x}",
                 f" mip      {ps.mip():016x}   mie      {ps.mie:016x}",
                 f" mideleg  {ps.mideleg:016x}   medeleg  {ps.medeleg:016x}"]
        for i in range(0, 32, 4):
            lines.append(" " + " ".join(f"x{j}/{ABI_NAMES[j]}".ljust(8) + f" {state.x(j):016x}"
                                        for j in range(i, i + 4)))
        return "\n".join(lines) + "\n"

    def read_memory(self, addr: int, size: int, physical: bool = True,
                    cpu_index: int = 0) -> bytes:
        space = self.board.space
        try:
            if physical:
                return space.read(addr, size)
            out = bytearray()
            hart = self._hart(cpu_index)
            pos = addr
            while pos < addr + size:
                page_end = (pos | 0xFFF) + 1
                n = min(page_end, addr + size) - pos
                out += space.read(self._virt_to_phys(hart, pos), n)
                pos += n
            return bytes(out)
        except (GuestMemoryError, ValueError) as e:
            raise QMPError(f"Invalid addr 0x{addr:x}/size {size} specified: {e}") from None

    @staticmethod
    def _virt_to_phys(hart, vaddr: int) -> int:
        """A debugger's page walk: no A/D updates, no TLB fill, no guest trap."""
        ps = hart.ps
        priv, sum_ = ps.data_priv()
        if priv == 3 or not ps.satp >> 60:
            return vaddr
        regime = hart.regime
        try:
            t = walk(ps.satp, vaddr, ACCESS_READ, priv, True,
                     bool(ps.mstatus & MSTATUS_MXR), regime._pte_load, lambda a, v: None,
                     lambda a: True)
        except RiscvTrap:
            raise ValueError(f"virtual address 0x{vaddr:x} is not mapped") from None
        return t.paddr

    def info_mtree(self) -> str:
        lines = ["address-space: memory"]
        for r in sorted(self.board.space.regions(), key=lambda r: r.base):
            kind = "ram" if hasattr(r, "view") else "i/o"
            lines.append(f"  {r.base:016x}-{r.base + r.size - 1:016x} (prio 0, {kind}): "
                         f"{r.name}")
        return "\n".join(lines) + "\n"

    def info_qtree(self) -> str:
        lines = ["bus: main-system-bus", "  type System"]
        for r in sorted(self.board.space.regions(), key=lambda r: r.base):
            handler = getattr(r, "handler", None)
            if handler is None:
                continue
            dev = getattr(handler, "device", None)
            what = type(dev).__name__ if dev is not None else type(handler).__name__
            lines.append(f"  dev: {r.name}, id \"\"  ({what})")
            lines.append(f"    mmio {r.base:016x}/{r.size:016x}")
        return "\n".join(lines) + "\n"

    def info_tlb(self, cpu_index: int) -> str:
        h = self._hart(cpu_index)
        dram = self.board.dram.base
        lines = ["softmmu TLB (virtual page -> physical page, by access):"]
        for what, tlbs in (("read", h.mmu.read_tlb), ("write", h.mmu.write_tlb)):
            for idx, tlb in enumerate(tlbs):
                for vpn, addend in sorted(tlb.items()):
                    va = vpn << 12
                    lines.append(f"  {what} mmu{idx} {va:016x} -> {dram + va + addend:016x}")
        return "\n".join(lines) + "\n"

    def device_models(self) -> dict[str, object]:
        context = getattr(self.board, "device_context", None)
        made = dict(context.devices) if context is not None else {}
        return made | self._hot_models

    def qom_children(self) -> dict[str, str]:
        children = {dev["id"]: dev.get("driver", "device") for dev in self.cfg.devices
                    if dev.get("id")}
        return (children | self._hotplugged)

    # -- PCIe hot-plug (virt's pcie-root-port slots) -----------------------------------------
    def _device_add(self, options: dict[str, str]) -> None:
        hot_add = getattr(self.board, "hot_add", None)
        if hot_add is None:
            super()._device_add(options)
            return
        dev_id = options.get("id")
        if not dev_id:
            raise QMPError("device_add needs an id (device_del names the device by it)")
        if dev_id in self.qom_children():
            raise QMPError(f"Duplicate device ID '{dev_id}'")
        try:
            self._hot_models[dev_id] = hot_add(options, self.board.device_context)
        except (BoardError, OptionError) as e:
            raise QMPError(str(e)) from None
        self._hotplugged[dev_id] = options["driver"]
        drive = options.get("drive")
        qdev = unit_qdev(options["driver"], dev_id)
        if drive and drive in self.block.drives:  # a -drive if=none, listed since start
            self.block.attach_drive(drive, qdev,
                                    *STORAGE_UNITS.get(options["driver"], VIRTIO_DISK))
            self._hot_legacy_drives[dev_id] = drive
        elif drive and self.block.node_backend(drive) is not None:
            self.block.bind_node(drive, qdev=qdev)
            self._hot_drives[dev_id] = drive
        connect_balloon_events(self)  # a hot-plugged balloon reports too

    def _device_del(self, dev_id: str) -> bool:
        hot_remove = getattr(self.board, "hot_remove", None)
        if hot_remove is None:
            return super()._device_del(dev_id)

        def removed(device: object) -> None:
            self._hotplugged.pop(dev_id, None)
            self._hot_models.pop(dev_id, None)
            drive = self._hot_drives.pop(dev_id, None)
            if drive is not None:  # the node may be used again, or blockdev-del'd
                self.block.unbind_node(drive)
                self.board.device_context.used.discard(drive)
            legacy = self._hot_legacy_drives.pop(dev_id, None)
            if legacy is not None:  # a -drive goes with its device, as in QEMU
                self.block.drop_drive(legacy)
                self.board.device_context.forget_drive(legacy)
            self.device_deleted(dev_id)

        try:
            hot_remove(dev_id, removed)
        except BoardError as e:
            raise QMPError(str(e)) from None
        return True
