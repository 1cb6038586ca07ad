"""One declared field to bytes and back, by kind (``VMStateField.kind``).

  scalar  u8/u16/u32/u64: little-endian, that many bytes; bool: one byte, 0 or 1
  bytes   u32 length, then the bytes (length at most the field's ``max``)
  array   u32 element count, then the elements

Decoding checks only what the bytes alone can tell (truncation, bool bytes, declared
length limits); checks against the receiving device are vmstate.py's.
"""

from __future__ import annotations

from pemu.hw.core import SCALAR_KINDS, VMStateField
from pemu.migration.wire import Reader, WireError, put_uint


def _encode_scalar(out: bytearray, kind: str, value: object) -> None:
    if kind == "bool":
        if value not in (True, False):  # 0 and 1 compare equal to False and True
            raise WireError(f"{value!r} is not a bool")
        put_uint(out, 1, int(bool(value)))
        return
    if not isinstance(value, int):
        raise WireError(f"{value!r} is not an integer")
    put_uint(out, SCALAR_KINDS[kind], value)


def _decode_scalar(r: Reader, kind: str) -> int | bool:
    value = r.uint(SCALAR_KINDS[kind])
    if kind == "bool":
        if value > 1:
            raise WireError(f"bool byte 0x{value:02x} is neither 0 nor 1")
        return bool(value)
    return value


def encode_field(out: bytearray, f: VMStateField, value: object) -> None:
    if f.kind == "bytes":
        data = bytes(value)  # type: ignore[call-overload]
        if len(data) > f.max:  # type: ignore[operator]  # VMState requires an int max
            raise WireError(f"{len(data)} bytes, more than the declared {f.max}")
        put_uint(out, 4, len(data))
        out += data
    elif f.is_array:
        values = list(value)  # type: ignore[call-overload]
        put_uint(out, 4, len(values))
        for v in values:
            _encode_scalar(out, f.element_kind, v)
    else:
        _encode_scalar(out, f.kind, value)


def decode_field(r: Reader, f: VMStateField) -> object:
    if f.kind == "bytes":
        n = r.uint(4)
        if n > f.max:  # type: ignore[operator]
            raise WireError(f"{n} bytes, more than the declared {f.max}")
        return r.take(n)
    if f.is_array:
        n = r.uint(4)
        width = SCALAR_KINDS[f.element_kind]
        # Bound the count by what is there before building anything: a lying count
        # must not allocate.
        if n * width > r.remaining:
            raise WireError(f"array of {n} elements runs past the end of the section")
        return [_decode_scalar(r, f.element_kind) for _ in range(n)]
    return _decode_scalar(r, f.kind)
