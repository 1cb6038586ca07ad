"""Multiport virtio-serial's migratable state (``SerialPortsState``, a mixin of
``VirtioSerial``): the section ``virtio-serial``.

Per port number (arrays of ``max_ports`` entries, so another ``max_ports`` is refused;
``ports_present`` must match: the same ports on both sides, as QEMU requires):
guest_ready, guest_open, what the guest was last told of the host side
(``host_told``), the host input taken from the chardev but not yet in a guest buffer
(``pending_lengths`` + ``pending_data``), and the guest output the chardev had not
taken all of (``tx_held``: the transmit element popped and held, ``tx_taken``: how
much of it the chardev took).  Device-wide: the driver's DEVICE_READY and the control
messages waiting for a control buffer (``control_out``: u16 length + message each).

Post-load: the held transmit element is popped again from the ring (it is the last
one popped on that queue; ``VirtioDevice.retake_held``) and its untaken rest waits for
the target chardev to be writable; the chardevs learn whether the guest has them open;
a port whose host side differs on the target from what the guest was told gets a
PORT_OPEN message, as QEMU's virtio-serial post-load sends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from pemu.hw.core import VMState, VMStateField, VMStateInvalid
from pemu.hw.state_records import pack_records, unpack_records
from pemu.hw.virtio.serial_control import CONTROL, PORT_OPEN

RX_CHUNK = 4096  # most input taken from a chardev at once (and so ever pending)
MAX_PORTS = 32
CONTROL_OUT_MAX = 64 * 1024
CONTROL_HEAD = 8  # every control message has its 8-byte head
class SerialPortsState:
    """Views, checks and post-load for ``VirtioSerial.vmstate``."""

    vmstate = VMState("virtio-serial", 1, (
        VMStateField("ports_present", "bool[]", equal=True),
        VMStateField("device_ready", "bool"),
        VMStateField("guest_ready", "bool[]"),
        VMStateField("guest_open", "bool[]"),
        VMStateField("host_told", "bool[]"),
        VMStateField("pending_lengths", "u32[]", max=RX_CHUNK),
        VMStateField("pending_data", "bytes", max=MAX_PORTS * RX_CHUNK),
        VMStateField("tx_held", "bool[]"),
        VMStateField("tx_taken", "u32[]"),
        VMStateField("control_out", "bytes", max=CONTROL_OUT_MAX),
    ))

    # -- views (the loaded values are staged in _loaded, applied by post-load) -----------
    def _per_port(self, value_of, default) -> list:
        return [value_of(self.ports[nr]) if nr in self.ports else default  # type: ignore[attr-defined]
                for nr in range(self.max_ports)]  # type: ignore[attr-defined]

    def _stage(self, name: str, value: object) -> None:
        self.__dict__.setdefault("_loaded", {})[name] = value

    @property
    def ports_present(self) -> list[bool]:
        return [nr in self.ports for nr in range(self.max_ports)]  # type: ignore[attr-defined]

    device_ready = property(lambda self: self._device_ready,
                            lambda self, v: self._stage("device_ready", v))
    guest_ready = property(lambda self: self._per_port(lambda p: p.guest_ready, False),
                           lambda self, v: self._stage("guest_ready", v))
    guest_open = property(lambda self: self._per_port(lambda p: p.guest_open, False),
                          lambda self, v: self._stage("guest_open", v))
    host_told = property(lambda self: self._per_port(lambda p: p.host_open, False),
                         lambda self, v: self._stage("host_told", v))
    pending_lengths = property(lambda self: self._per_port(lambda p: len(p.pending), 0),
                               lambda self, v: self._stage("pending_lengths", v))
    pending_data = property(
        lambda self: b"".join(bytes(self.ports[nr].pending) for nr in sorted(self.ports)),
        lambda self, v: self._stage("pending_data", v))
    tx_held = property(lambda self: self._per_port(
        lambda p: p.tx_held is not None or p.tx_retake is not None, False),
                       lambda self, v: self._stage("tx_held", v))
    tx_taken = property(lambda self: self._per_port(_taken, 0),
                        lambda self, v: self._stage("tx_taken", v))
    control_out = property(lambda self: pack_records(list(self._control_out)),
                           lambda self, v: self._stage("control_out", v))

    # -- checks -------------------------------------------------------------------------
    def vmstate_check(self, state: Mapping[str, object]) -> None:
        present = self.ports_present
        for name in ("guest_ready", "guest_open", "host_told", "tx_held",
                     "pending_lengths", "tx_taken"):
            values: list = state[name]  # type: ignore[assignment]
            if any(v and not here for v, here in zip(values, present, strict=True)):
                raise VMStateInvalid(name, "state for a port this device does not have")
        if sum(state["pending_lengths"]) != len(state["pending_data"]):  # type: ignore[arg-type]
            raise VMStateInvalid("pending_data", "the per-port lengths do not add up to "
                                 "the pending bytes")
        for nr, (held, taken) in enumerate(zip(state["tx_held"], state["tx_taken"],  # type: ignore[call-overload]
                                               strict=True)):
            if taken and not held:
                raise VMStateInvalid("tx_taken", f"port {nr}: bytes taken of output it "
                                     "does not hold")
        if unpack_records(state["control_out"], CONTROL_HEAD) is None:  # type: ignore[arg-type]
            raise VMStateInvalid("control_out", "not a sequence of control messages")

    # -- applying ---------------------------------------------------------------------------
    def vmstate_post_load(self) -> None:
        loaded = self.__dict__.pop("_loaded", {})
        if not loaded:
            return
        self._device_ready = loaded["device_ready"]  # type: ignore[attr-defined]
        self._control_out = deque(unpack_records(loaded["control_out"], CONTROL_HEAD) or [])  # type: ignore[attr-defined]
        data, pos = loaded["pending_data"], 0
        for nr, port in sorted(self.ports.items()):  # type: ignore[attr-defined]
            port.guest_ready = loaded["guest_ready"][nr]
            port.guest_open = loaded["guest_open"][nr]
            n = loaded["pending_lengths"][nr]
            port.pending = bytearray(data[pos:pos + n])
            pos += n
            port.chardev.set_fe_open(port.console or port.guest_open)
            port.tx_held, port.tx_waiting, port.tx_retake = None, False, None
            if loaded["tx_held"][nr]:
                # re-taken from the ring when the target chardev can take it (by then
                # the transport's queue state is loaded, whatever the load order)
                port.tx_retake, port.tx_waiting = loaded["tx_taken"][nr], True
                port.chardev.notify_writable(lambda p=port: self._writable(p))  # type: ignore[attr-defined]
            if (port.guest_ready and self.multiport  # type: ignore[attr-defined]
                    and loaded["host_told"][nr] != port.host_open):
                message = CONTROL.pack(nr, PORT_OPEN, int(port.host_open))
                self._control_out.append(message)  # type: ignore[attr-defined]
        self._flush_control()  # type: ignore[attr-defined]


def retake_tx(device, port, vq) -> None:
    """Before a port's transmit queue is popped after a load: the element the source
    held goes back into ``port.tx_held``, less what the source's chardev took."""
    taken, port.tx_retake = port.tx_retake, None
    elem = device.retake_held(vq)
    port.tx_held = (elem, b"".join(bytes(b) for b in elem.out_bufs)[taken:])


def _taken(port) -> int:
    if port.tx_retake is not None:
        return port.tx_retake
    if port.tx_held is None:
        return 0
    elem, rest = port.tx_held
    return sum(len(b) for b in elem.out_bufs) - len(rest)

