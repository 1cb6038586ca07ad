"""virtio-scsi (spec 5.6): a SCSI host adapter whose request queues carry CDBs to the
units on its bus (pemu/hw/scsi), with the sense data in each response.

Queues: 0 control (task management, asynchronous notification queries), 1 events
(never used: no hot-plug events are sent), 2.. requests.  A request is
  out: lun[8], id u64, task_attr u8, prio u8, crn u8, cdb[32] [+ data-out]
  in:  sense_len u32, residual u32, status_qualifier u16, status u8, response u8,
       sense[96] [+ data-in]
LUNs use the single-level format: lun[0] = 1, lun[1] = target, lun[2..3] = 0x4000 | lun.
A command runs on its unit's drive I/O thread; a task management request queues
behind the unit's commands there, so that "abort" or "reset" is answered only once
the requests before it have completed.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from pemu.hw.core import VMState, VMStateField, VMStateInvalid
from pemu.hw.scsi.bus import ScsiBus
from pemu.hw.scsi.disk import ScsiResult
from pemu.hw.scsi.sense import GOOD, SENSE_MAX_LENGTH
from pemu.hw.state_records import pack_records, unpack_records
from pemu.hw.virtio.device import VirtioDevice
from pemu.hw.virtio.virtqueue import VirtqElement, VirtQueue, slice_bufs
from pemu.qom.registry import DEVICE, Property, RegistryError, TypeInfo, int_property, register

VIRTIO_ID_SCSI = 8
CDB_SIZE = 32
SENSE_SIZE = 96
REQ_HEADER = 8 + 8 + 3 + CDB_SIZE
RESP = struct.Struct(f"<IIHBB{SENSE_SIZE}s")
MAX_TARGET = 255
MAX_LUN = 16383
CTRL_QUEUE, EVENT_QUEUE, FIRST_REQUEST_QUEUE = 0, 1, 2

# response codes (spec 5.6.6.1)
S_OK = 0
S_BAD_TARGET = 3
S_FAILURE = 9
S_FUNCTION_COMPLETE = 0
S_FUNCTION_REJECTED = 11
# control request types
T_TMF, T_AN_QUERY, T_AN_SUBSCRIBE = 0, 1, 2


def decode_lun(lun: bytes) -> tuple[int, int] | None:
    """(target, lun) of a single-level LUN field, or None if not one."""
    if lun[0] != 1:
        return None
    return lun[1], ((lun[2] << 8) | lun[3]) & 0x3FFF


class VirtioSCSI(VirtioDevice):
    device_id = VIRTIO_ID_SCSI
    type_name = "virtio-scsi-device"
    # Beyond the transport's queues: each unit's sense data (what REQUEST SENSE will
    # answer), the units themselves must match (address and kind).  Requests in flight
    # are drained before the save (``drain``, from the board's migration_pre_save), and
    # event buffers stay in their ring (no events are ever sent), so nothing else is
    # outstanding.  scsi-hd/scsi-cd model no unit attention and no tray: their sense
    # data is all their state.
    vmstate = VMState("virtio-scsi", 1, (
        VMStateField("unit_addresses", "u32[]", equal=True),
        VMStateField("unit_cdrom", "bool[]", equal=True),
        VMStateField("unit_sense", "bytes", max=1 << 20),
    ))

    def __init__(self, num_queues: int = 1, queue_size: int = 256,
                 id: str | None = None) -> None:
        super().__init__(id)
        if not 1 <= num_queues <= 64:
            raise ValueError(f"num_queues={num_queues} (1..64)")
        self.request_queues = num_queues
        self.num_queues = FIRST_REQUEST_QUEUE + num_queues
        self.queue_size = queue_size
        self.scsi_bus = ScsiBus(f"{id or 'scsi'}.0", MAX_TARGET, MAX_LUN)

    # -- migration ----------------------------------------------------------------------
    def _units(self) -> list:
        return [unit for _, unit in sorted(self.scsi_bus.units.items())]

    @property
    def unit_addresses(self) -> list[int]:
        return [target << 16 | lun for (_, target, lun) in sorted(self.scsi_bus.units)]

    @property
    def unit_cdrom(self) -> list[bool]:
        return [unit.cdrom for unit in self._units()]

    @property
    def unit_sense(self) -> bytes:
        return pack_records([unit.pending_sense for unit in self._units()])

    @unit_sense.setter
    def unit_sense(self, blob: bytes) -> None:
        for unit, sense in zip(self._units(), unpack_records(blob) or [], strict=False):
            unit.pending_sense = sense

    def vmstate_check(self, state: Mapping[str, object]) -> None:
        sense = unpack_records(state["unit_sense"], 0, SENSE_MAX_LENGTH)  # type: ignore[arg-type]
        if sense is None or len(sense) != len(self.scsi_bus.units):
            raise VMStateInvalid("unit_sense", "not one sense record per unit")

    def drain(self) -> None:
        """Wait until every request the units run on I/O threads has completed."""
        for unit in self._units():
            drain = getattr(unit.backend, "drain", None)
            if callable(drain):
                drain()

    def config_bytes(self) -> bytes:
        return struct.pack("<IIIIIIIHHI", self.request_queues, self.queue_size - 2, 0xFFFF,
                           128, 16, SENSE_SIZE, CDB_SIZE, 0, MAX_TARGET, MAX_LUN)

    def queue_notified(self, vq: VirtQueue) -> None:
        if vq.index == EVENT_QUEUE:
            return  # the driver's event buffers wait for events that never come
        while (elem := vq.pop()) is not None:
            if vq.index == CTRL_QUEUE:
                self._control(vq, elem)
            else:
                self._request(vq, elem)

    # -- completion -----------------------------------------------------------------------
    def _run(self, vq: VirtQueue, elem: VirtqElement, backend: object, work) -> None:  # noqa: ANN001
        """``work()`` returns the bytes written into the element; it runs on the
        backend's I/O thread when it has one."""
        submit = getattr(backend, "submit", None)
        if not callable(submit):
            self.complete(vq, elem, work())
            return
        submit(work, self.completion_for(vq, elem))

    # -- requests ---------------------------------------------------------------------------
    def _request(self, vq: VirtQueue, elem: VirtqElement) -> None:
        if elem.in_len < RESP.size:
            self.complete(vq, elem, 0)  # no room for a response: hand the chain back
            return
        header = elem.read_out(0, REQ_HEADER)
        address = decode_lun(header[:8]) if len(header) == REQ_HEADER else None
        if len(header) < REQ_HEADER:
            self.complete(vq, elem, self._respond(elem, S_FAILURE))
            return
        if address is None or not self.scsi_bus.has_target(0, address[0]):
            self.complete(vq, elem, self._respond(elem, S_BAD_TARGET))
            return
        target, lun = address
        cdb = header[19:]
        data_out = slice_bufs(elem.out_bufs, REQ_HEADER, elem.out_len - REQ_HEADER)
        data_in = slice_bufs(elem.in_bufs, RESP.size, elem.in_len - RESP.size)
        in_room = elem.in_len - RESP.size

        def work() -> int:
            result = self.scsi_bus.execute(0, target, lun, cdb, data_out, data_in)
            residual = in_room - result.data_in if in_room else (
                0 if result.status == GOOD else elem.out_len - REQ_HEADER)
            return self._respond(elem, S_OK, result, residual) + result.data_in

        unit = self.scsi_bus.unit(0, target, lun)
        self._run(vq, elem, unit.backend if unit is not None else None, work)

    @staticmethod
    def _respond(elem: VirtqElement, response: int, result: ScsiResult | None = None,
                 residual: int = 0) -> int:
        sense = result.sense[:SENSE_SIZE] if result else b""
        status = result.status if result else 0
        elem.write_in(0, RESP.pack(len(sense), residual, 0, status, response, sense))
        return RESP.size

    # -- control queue ------------------------------------------------------------------------
    def _control(self, vq: VirtQueue, elem: VirtqElement) -> None:
        head = elem.read_out(0, 4)
        kind = struct.unpack("<I", head)[0] if len(head) == 4 else -1
        if kind == T_TMF:
            raw = elem.read_out(8, 8)
            address = decode_lun(raw) if len(raw) == 8 else None
            unit = self.scsi_bus.unit(0, *address) if address else None
            # answered after the unit's earlier commands (same I/O thread, in order)
            self._run(vq, elem, unit.backend if unit is not None else None,
                      lambda: elem.write_in(0, bytes([S_FUNCTION_COMPLETE])))
        elif kind in (T_AN_QUERY, T_AN_SUBSCRIBE):
            # no asynchronous events are supported: event_actual 0
            self.complete(vq, elem, elem.write_in(0, struct.pack("<IB", 0, S_OK)))
        else:
            self.complete(vq, elem, elem.write_in(0, bytes([S_FUNCTION_REJECTED])))


def _create(ctx: object, opts: dict[str, str], name: str) -> VirtioSCSI:
    driver = "virtio-scsi-device"
    try:
        return VirtioSCSI(int_property(driver, opts, "num_queues", 1),
                          int_property(driver, opts, "virtqueue_size", 256), id=name)
    except ValueError as e:
        raise RegistryError(f"{driver}: {e}") from None


register(TypeInfo(
    "virtio-scsi-device", DEVICE, "Virtio SCSI host adapter", bus="virtio-bus",
    factory=_create, properties=(
        Property("num_queues", "uint32", "1", "request queues"),
        Property("virtqueue_size", "uint32", "256", "descriptors per virtqueue"),
    )))
