"""Device/function addresses as ``-device ...,addr=`` spells them: ``SLOT[.FN]`` in hex
(``addr=3``, ``addr=0x3.1``, ``addr=1f.7``), as QEMU parses them."""

from __future__ import annotations

MAX_SLOT = 31
MAX_FUNCTION = 7


def devfn(slot: int, function: int = 0) -> int:
    return (slot << 3) | function


def parse_devfn(text: str) -> int:
    """``SLOT[.FN]`` -> devfn; ValueError with a message for the user."""
    slot_text, dot, fn_text = text.strip().partition(".")
    try:
        slot = int(slot_text, 16)
        function = int(fn_text, 16) if dot else 0
    except ValueError:
        raise ValueError(f"Property 'addr': '{text}' is not a PCI address (SLOT[.FN] "
                         "in hex)") from None
    if not 0 <= slot <= MAX_SLOT or not 0 <= function <= MAX_FUNCTION:
        raise ValueError(f"Property 'addr': slot {slot:#x} function {function} is out of "
                         f"range (slot 0..0x{MAX_SLOT:x}, function 0..{MAX_FUNCTION})")
    return devfn(slot, function)


def format_devfn(value: int) -> str:
    return f"{value >> 3:02x}.{value & 7}"
