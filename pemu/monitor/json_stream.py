"""Cutting a QMP byte stream into JSON messages, with limits a hostile client cannot pass.

A QMP client writes JSON objects back to back, with or without newlines, and may split
one object over many ``send`` calls.  ``JSONStreamSplitter`` tracks just enough of the
JSON grammar (nesting depth, strings, escapes) to find where each top-level value ends,
then ``json.loads`` parses that slice.  Limits keep a client from making us buffer
without end (``max_size``) or recurse without end (``max_depth``).  After any error the
splitter resynchronises at the next top-level value, so one bad message costs one error
reply and never the connection.  A 0xFF byte resets the splitter, as in QEMU, so a
confused client can always get back to a clean state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass

MAX_MESSAGE_SIZE = 1 << 20  # QMP arguments are small; images travel as file names
MAX_NESTING = 64

_OPEN = b"{["
_CLOSE = b"}]"
_WS = b" \t\r\n"


@dataclass
class ParseError:
    """A message that could not be used; ``desc`` goes back in a GenericError."""

    desc: str


def _reject_constant(name: str) -> float:
    raise ValueError(f"'{name}' is not valid JSON")


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # Python keeps the last of two equal keys; a proxy that checked the first would be
    # bypassed, so the message is refused, as QEMU's parser refuses it.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _finite_float(text: str) -> float:
    # 1e309 parses to inf, which would be echoed back as "Infinity": not JSON.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


def decode_json(text: bytes) -> object:
    """Strict JSON: UTF-8 only, no NaN/Infinity (literal or overflowed), no duplicate
    keys; raises ValueError."""
    try:
        return json.loads(text.decode("utf-8"), parse_constant=_reject_constant,
                          parse_float=_finite_float,
                          object_pairs_hook=_reject_duplicate_keys)
    except UnicodeDecodeError:
        raise ValueError("invalid UTF-8 in JSON input") from None
    except RecursionError:
        raise ValueError("JSON nesting too deep") from None


class JSONStreamSplitter:
    def __init__(self, max_size: int = MAX_MESSAGE_SIZE, max_depth: int = MAX_NESTING) -> None:
        self.max_size = max_size
        self.max_depth = max_depth
        self._reset()

    def _reset(self) -> None:
        self._buf = bytearray()
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._skipping: str | None = None  # why the current value is being discarded
        self._garbage = False  # inside bytes that are not JSON at the top level

    def feed(self, data: bytes) -> Iterator[object | ParseError]:
        """Yield each complete message (a decoded value or a ParseError) in ``data``."""
        for byte in data:
            result = self._step(byte)
            if result is not None:
                yield result

    def _step(self, byte: int) -> object | ParseError | None:
        if byte == 0xFF:
            self._reset()
            return None
        if self._depth == 0:
            return self._top_level(byte)
        if not self._skipping:
            self._buf.append(byte)
            if len(self._buf) > self.max_size:
                self._skipping = f"message longer than {self.max_size} bytes"
                self._buf = bytearray()
        if self._in_string:
            if self._escape:
                self._escape = False
            elif byte == 0x5C:  # backslash
                self._escape = True
            elif byte == 0x22:  # quote
                self._in_string = False
            return None
        if byte == 0x22:
            self._in_string = True
        elif byte in _OPEN:
            self._depth += 1
            if self._depth > self.max_depth and not self._skipping:
                self._skipping = f"JSON nesting deeper than {self.max_depth} levels"
                self._buf = bytearray()
        elif byte in _CLOSE:
            self._depth -= 1
            if self._depth == 0:
                return self._finish()
        return None

    def _top_level(self, byte: int) -> ParseError | None:
        if byte in _OPEN:
            self._garbage = False
            self._depth = 1
            self._buf = bytearray([byte])
            return None
        if byte in _WS:
            if self._garbage and byte == 0x0A:
                self._garbage = False  # a newline ends a run of junk
            return None
        if self._garbage:
            return None
        # Scalars, stray closers and junk: QMP messages are objects, so this is an error.
        self._garbage = True
        return ParseError("JSON parse error, expecting value (QMP input must be an object)")

    def _finish(self) -> object | ParseError:
        text, why = bytes(self._buf), self._skipping
        self._buf = bytearray()
        self._skipping = None
        self._in_string = self._escape = False
        if why:
            return ParseError(f"JSON parse error, {why}")
        try:
            return decode_json(text)
        except ValueError as e:
            return ParseError(f"JSON parse error, {e}")
