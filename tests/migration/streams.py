"""Building bad streams on purpose: a section with one part replaced, re-checksummed so
that it gets past the CRC to the checks behind it."""

from __future__ import annotations

from pemu.hw.core import Device
from pemu.migration import save_device
from pemu.migration.fields import encode_field
from pemu.migration.section import decode_section, encode_section


def reframe(data: bytes, *, name: str | None = None, version: int | None = None,
            payload: bytes | None = None) -> bytes:
    """The section with some part replaced and a valid checksum: gets past the CRC to
    the checks behind it."""
    s, _ = decode_section(data)
    return encode_section(name or s.name, s.version if version is None else version,
                          s.payload if payload is None else payload)


def field_offsets(dev: Device) -> dict[str, int]:
    """Where each field starts in the device's payload."""
    out, offsets = bytearray(), {}
    for f in dev.vmstate.fields:
        offsets[f.name] = len(out)
        encode_field(out, f, getattr(dev, f.name))
    return offsets


def replace_field(dev: Device, name: str, raw: bytes) -> bytes:
    """The device's section with field ``name``'s encoding replaced by ``raw``."""
    data = save_device(dev)
    payload = decode_section(data)[0].payload
    offsets = field_offsets(dev)
    names = [f.name for f in dev.vmstate.fields]
    i = names.index(name)
    end = offsets[names[i + 1]] if i + 1 < len(names) else len(payload)
    return reframe(data, payload=payload[:offsets[name]] + raw + payload[end:])


def with_value(dev: Device, name: str, value: object) -> bytes:
    """The device's section with field ``name`` encoded as ``value``."""
    f = next(f for f in dev.vmstate.fields if f.name == name)
    raw = bytearray()
    if f.kind == "bytes":  # by hand: the encoder refuses what is longer than max
        raw += len(value).to_bytes(4, "little") + value  # type: ignore[arg-type]
    else:
        encode_field(raw, f, value)
    return replace_field(dev, name, bytes(raw))
