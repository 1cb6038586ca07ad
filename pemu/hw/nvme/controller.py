"""The NVMe controller as a PCI function (QEMU's ``nvme``: 1b36:0010, class 010802).

BAR0 (64-bit memory, 16 KiB): the registers (0x0000), doorbells with stride 0 (0x1000:
SQ y tail at 0x1000 + 8y, CQ y head at 0x1004 + 8y), the MSI-X table (0x2000) and PBA
(0x3000).  A tail doorbell fetches every new entry of that submission queue at once:
admin commands run on the vCPU thread; I/O commands are checked and their PRPs mapped
there, and the block work runs on the drive's I/O thread (``BlockBackend.submit``),
whose callback posts the completion.  So completions are posted in the order the block
layer finishes them, not in submission order, and the vCPU never waits for the disk.

Interrupts: with MSI-X on, each post to a completion queue with interrupts enabled
fires its vector.  Otherwise INTA# is a level: asserted while such a queue holds entries
the host has not consumed (its head doorbell has not passed them), unless INTMS masks it.

``lock`` covers the registers and queues; the I/O thread's callbacks take it too.  A
controller reset (CC.EN 1 -> 0, or the board's) bumps ``generation``, and completions
of commands from before it are dropped.
"""

from __future__ import annotations

import sys
import threading

from pemu.hw.core import VMState
from pemu.hw.nvme import identify as ident
from pemu.hw.nvme import spec as S
from pemu.hw.nvme.admin import MAX_QUEUE_ENTRIES, AdminCommands
from pemu.hw.nvme.controller_state import NVME_FIELDS, NvmeControllerState
from pemu.hw.nvme.namespace import Namespace, Work
from pemu.hw.nvme.queues import CompletionQueue, SubmissionQueue, ring_view
from pemu.hw.nvme.spec import Command, NvmeError
from pemu.hw.pci.bar import BAR_MEM64
from pemu.hw.pci.device import PCIDevice
from pemu.memory.address_space import AddressSpace, GuestMemoryError

BAR0 = 0
BAR0_SIZE = 0x4000
MSIX_TABLE = 0x2000
MSIX_PBA = 0x3000
MAX_IOQPAIRS = (MSIX_TABLE - S.DOORBELLS) // 8 - 1  # doorbells must fit below the table
MAX_VECTORS = (MSIX_PBA - MSIX_TABLE) // 16
MPS_MAX = 4  # pages up to 64 KiB
TIMEOUT_500MS = 0x0F

CAP = ((MAX_QUEUE_ENTRIES - 1)  # MQES
       | 1 << 16  # CQR: queues are physically contiguous
       | TIMEOUT_500MS << 24
       | 1 << 37  # CSS: the NVM command set
       | MPS_MAX << 52)


class NvmeController(NvmeControllerState, PCIDevice):
    vmstate = VMState("nvme", 1, NVME_FIELDS)  # controller_state.py
    vendor_id = 0x1B36
    device_id = 0x0010
    revision = 2
    class_code = 0x010802  # mass storage, NVM, NVM Express
    type_name = "nvme"

    def __init__(self, space: AddressSpace, serial: str, max_ioqpairs: int = 64,
                 msix_qsize: int = 65, mdts: int = 7, id: str | None = None) -> None:
        if not 1 <= max_ioqpairs <= MAX_IOQPAIRS:
            raise ValueError(f"max_ioqpairs={max_ioqpairs} (1..{MAX_IOQPAIRS})")
        if not 1 <= msix_qsize <= MAX_VECTORS:
            raise ValueError(f"msix_qsize={msix_qsize} (1..{MAX_VECTORS})")
        if not 0 <= mdts <= 15:
            raise ValueError(f"mdts={mdts} (0..15)")
        super().__init__(id)
        self._staged: dict[str, list] = {}  # a load's queue tables (controller_state.py)
        self.space = space
        self.serial = serial
        self.max_ioqpairs = max_ioqpairs
        self.msix_vectors = msix_qsize
        self.mdts = mdts
        self.lock = threading.RLock()
        self.namespaces: dict[int, Namespace] = {}
        self.set_interrupt_pin(1)
        self.add_msix(msix_qsize, BAR0, MSIX_TABLE, MSIX_PBA)
        self.add_bar(BAR0, BAR0_SIZE, BAR_MEM64, _Bar0(self))
        self.admin = AdminCommands(self)
        self.generation = 0
        self._error_reported = False
        self.aqa = self.asq = self.acq = 0
        self._clear()

    # -- namespaces ---------------------------------------------------------------------------
    def attach(self, ns: Namespace) -> None:
        if not 1 <= ns.nsid <= ident.MAX_NAMESPACES:
            raise ValueError(f"nsid={ns.nsid} (1..{ident.MAX_NAMESPACES})")
        if ns.nsid in self.namespaces:
            raise ValueError(f"nsid {ns.nsid} is already in use")
        self.namespaces[ns.nsid] = ns

    def free_nsid(self) -> int:
        return next(n for n in range(1, ident.MAX_NAMESPACES + 1) if n not in self.namespaces)

    def identify_data(self) -> bytes:
        return ident.identify_controller(self.serial, self.vendor_id,
                                         self.subsystem_vendor_id, self.mdts)

    # -- state ----------------------------------------------------------------------------------
    def _clear(self) -> None:
        """The controller's reset state (registers other than AQA/ASQ/ACQ, all queues)."""
        self.generation += 1
        self.cc = 0
        self.csts = 0
        self.intms = 0
        self.sqs: dict[int, SubmissionQueue] = {}
        self.cqs: dict[int, CompletionQueue] = {}
        self.admin.reset()
        self.set_irq(False)

    def reset(self) -> None:
        with self.lock:
            super().reset()
            self.aqa = self.asq = self.acq = 0
            self._clear()

    def drain(self) -> None:
        """Wait until every submitted I/O has completed (migration saves no requests)."""
        for ns in self.namespaces.values():
            drain = getattr(ns.backend, "drain", None)
            if callable(drain):
                drain()

    def vmstate_post_load(self) -> None:
        self.generation += 1  # nothing from before the load may complete into it
        self.rebuild_queues()
        super().vmstate_post_load()

    @property
    def page_size(self) -> int:
        return 1 << (S.PAGE_SHIFT_MIN + ((self.cc >> 7) & 0xF))

    @property
    def max_transfer(self) -> int:
        return self.page_size << self.mdts if self.mdts else 1 << 62

    # -- registers ------------------------------------------------------------------------------
    def _register_bytes(self) -> bytes:
        b = bytearray(S.REGS_SIZE)
        for off, size, value in ((S.REG_CAP, 8, CAP), (S.REG_VS, 4, S.VERSION_1_4),
                                 (S.REG_INTMS, 4, self.intms), (S.REG_INTMC, 4, self.intms),
                                 (S.REG_CC, 4, self.cc), (S.REG_CSTS, 4, self.csts),
                                 (S.REG_AQA, 4, self.aqa), (S.REG_ASQ, 8, self.asq),
                                 (S.REG_ACQ, 8, self.acq)):
            b[off:off + size] = value.to_bytes(size, "little")
        return bytes(b)

    def read_register(self, offset: int, size: int) -> int:
        with self.lock:
            if offset + size > S.REGS_SIZE:
                return 0  # doorbells and reserved space read as zero
            return int.from_bytes(self._register_bytes()[offset:offset + size], "little")

    def write_register(self, offset: int, size: int, value: int) -> None:
        with self.lock:
            if offset >= S.DOORBELLS:
                self._doorbell(offset - S.DOORBELLS, size, value)
                return
            if offset + size > S.REGS_SIZE:
                return
            if offset in (S.REG_INTMS, S.REG_INTMC) and size == 4:
                # write 1 to set / to clear a mask bit (only for INTx: MSI-X masks itself)
                self.intms = self.intms | value if offset == S.REG_INTMS \
                    else self.intms & ~value
                self.update_intx()
                return
            img = bytearray(self._register_bytes())
            img[offset:offset + size] = value.to_bytes(size, "little")

            def reg(off: int, n: int) -> int:
                return int.from_bytes(img[off:off + n], "little")
            self.aqa = reg(S.REG_AQA, 4) & 0x0FFF0FFF
            self.asq = reg(S.REG_ASQ, 8) & ~0xFFF
            self.acq = reg(S.REG_ACQ, 8) & ~0xFFF
            if offset < S.REG_CC + 4 and offset + size > S.REG_CC:
                self._write_cc(reg(S.REG_CC, 4))

    def _write_cc(self, cc: int) -> None:
        was_enabled = self.cc & S.CC_EN
        shutdown_before = (self.cc >> 14) & 3
        self.cc = cc
        if was_enabled and not cc & S.CC_EN:
            self._clear()
            return
        if not was_enabled and cc & S.CC_EN:
            self._enable()
        if (cc >> 14) & 3 and not shutdown_before:
            for ns in self.namespaces.values():
                self._flush_quietly(ns)
            self.csts = (self.csts & ~(3 << 2)) | S.SHST_COMPLETE

    def _enable(self) -> None:
        """CC.EN 0 -> 1: the admin queues from AQA/ASQ/ACQ; a bad set-up is a fatal
        controller status (CSTS.CFS), which the host sees instead of RDY."""
        sq_size, cq_size = (self.aqa & 0xFFF) + 1, ((self.aqa >> 16) & 0xFFF) + 1
        try:
            if (self.cc >> 7) & 0xF > MPS_MAX or (self.cc >> 4) & 7:
                raise ValueError("page size or command set")
            if sq_size < 2 or cq_size < 2:
                raise ValueError("admin queue size")
            sq_ring = ring_view(self.space, self.asq, sq_size, S.SQ_ENTRY)
            cq_ring = ring_view(self.space, self.acq, cq_size, S.CQ_ENTRY)
        except (ValueError, GuestMemoryError):
            self.csts = S.CSTS_CFS
            return
        self.cqs = {0: CompletionQueue(0, cq_ring, cq_size, 0, True, self.acq)}
        self.sqs = {0: SubmissionQueue(0, sq_ring, sq_size, 0, self.asq)}
        self.cqs[0].sq_count = 1
        self.csts = S.CSTS_RDY

    def _flush_quietly(self, ns: Namespace) -> None:
        try:
            ns.backend.flush()
        except Exception as e:  # noqa: BLE001 - shutdown must finish
            self._report(e)

    # -- doorbells --------------------------------------------------------------------------------
    def _doorbell(self, offset: int, size: int, value: int) -> None:
        if size != 4 or offset & 3 or not self.csts & S.CSTS_RDY:
            return
        qid, is_cq = offset >> 3, offset & 4
        if is_cq:
            cq = self.cqs.get(qid)
            if cq is not None and cq.set_head(value & 0xFFFF):
                if cq.flush_waiting():
                    self._interrupt(cq)
                self.update_intx()
            return
        sq = self.sqs.get(qid)
        if sq is None or not sq.set_tail(value & 0xFFFF):
            return  # a bad doorbell write is ignored (no asynchronous event reported)
        for cmd in sq.fetch():
            if qid == 0:
                self._run_admin(sq, cmd)
            else:
                self._run_io(sq, cmd)

    # -- commands ---------------------------------------------------------------------------------
    def _run_admin(self, sq: SubmissionQueue, cmd: Command) -> None:
        try:
            if cmd.flags:
                raise NvmeError(S.INVALID_FIELD, "fused operation or SGL")
            result = self.admin.execute(sq, cmd)
        except NvmeError as e:
            self._complete(sq, cmd.cid, e.status)
            return
        if result is not None:
            self._complete(sq, cmd.cid, S.SUCCESS, result)

    def _run_io(self, sq: SubmissionQueue, cmd: Command) -> None:
        try:
            if cmd.flags:
                raise NvmeError(S.INVALID_FIELD, "fused operation or SGL")
            if cmd.opcode == S.NVM_FLUSH and cmd.nsid == S.BROADCAST_NSID:
                targets = list(self.namespaces.values())
                backend = targets[0].backend if targets else None

                def work() -> None:
                    for ns in targets:
                        ns.backend.flush()
            else:
                ns = self.namespaces.get(cmd.nsid)
                if ns is None:
                    raise NvmeError(S.INVALID_NAMESPACE, f"nsid {cmd.nsid}")
                backend = ns.backend
                work = ns.prepare(cmd, self.space, self.page_size, self.max_transfer)
        except NvmeError as e:
            self._complete(sq, cmd.cid, e.status)
            return
        done = self._io_done(sq, cmd, self.generation)
        if callable(getattr(backend, "submit", None)):
            backend.submit(work, done)
        else:
            self._run_inline(work, done)

    @staticmethod
    def _run_inline(work: Work, done) -> None:  # noqa: ANN001 - the callback
        try:
            work()
        except Exception as e:  # noqa: BLE001 - reported in the completion
            done(None, e)
            return
        done(None, None)

    def _io_done(self, sq: SubmissionQueue, cmd: Command, generation: int):  # noqa: ANN202
        def done(_result: object, exc: BaseException | None) -> None:
            with self.lock:
                if generation != self.generation or self.sqs.get(sq.qid) is not sq:
                    return  # reset or queue deleted meanwhile
                self._complete(sq, cmd.cid, S.SUCCESS if exc is None
                               else self._failure_status(cmd, exc))
        return done

    def _failure_status(self, cmd: Command, exc: BaseException) -> int:
        if isinstance(exc, NvmeError):
            return exc.status
        self._report(exc)
        return S.UNRECOVERED_READ if cmd.opcode == S.NVM_READ else S.WRITE_FAULT

    def _report(self, exc: BaseException) -> None:
        if not self._error_reported:  # once: a failing disk must not flood stderr
            self._error_reported = True
            print(f"pemu: nvme {self.id or ''}: I/O error: {exc}", file=sys.stderr)

    # -- completions and interrupts ---------------------------------------------------------
    def _complete(self, sq: SubmissionQueue, cid: int, status: int, result: int = 0) -> None:
        cq = self.cqs.get(sq.cqid)
        if cq is None:
            return
        if status:
            status |= S.STATUS_DNR
        if cq.post(result & 0xFFFFFFFF, sq.head, sq.qid, cid, status):
            self._interrupt(cq)

    def _interrupt(self, cq: CompletionQueue) -> None:
        if not cq.irq_enabled:
            return
        if self.msix is not None and self.msix.enabled:
            self.msix.notify(cq.vector)
        else:
            self.update_intx()

    def update_intx(self) -> None:
        level = (not (self.msix is not None and self.msix.enabled) and not self.intms & 1
                 and any(cq.irq_enabled and cq.has_unread for cq in self.cqs.values()))
        if level != self.intx_level:
            self.set_irq(level)

    def config_write(self, offset: int, size: int, value: int) -> None:
        with self.lock:
            super().config_write(offset, size, value)
            self.update_intx()  # MSI-X turned on or off: INTx follows

    def describe(self) -> str:
        return self.type_name


class _Bar0:
    """BAR0: registers and doorbells below the MSI-X table, the table and PBA above."""

    def __init__(self, ctrl: NvmeController) -> None:
        self.ctrl = ctrl

    def mmio_read(self, offset: int, size: int) -> int:
        if offset >= MSIX_TABLE:
            return self.ctrl.msix.mmio_read(offset, size)  # type: ignore[union-attr]
        return self.ctrl.read_register(offset, size)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        if offset >= MSIX_TABLE:
            with self.ctrl.lock:
                self.ctrl.msix.mmio_write(offset, size, value)  # type: ignore[union-attr]
            return
        self.ctrl.write_register(offset, size, value)
