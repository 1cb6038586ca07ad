"""QEMU-style command-line parsing shared by every pemu command.

QEMU options are single-dash words (``-m 512M``, ``-drive file=x,if=none,id=d0``);
their values are often key=value lists where ``,,`` escapes a comma and the first
item may omit its key (``-device virtio-blk-device,drive=d0`` means
``driver=virtio-blk-device``).  This module turns argv into an ordered list of
``(option, value)`` pairs against a declared table, and values into dicts, with
errors that name the option, as QEMU's do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class OptionError(Exception):
    """A command-line problem; the message is shown to the user as is."""


@dataclass(frozen=True)
class OptionSpec:
    name: str  # without the leading dash
    takes_value: bool
    help: str = ""


def parse_argv(
    argv: list[str], table: dict[str, OptionSpec], prog: str
) -> list[tuple[str, str | None]]:
    """Split argv into (name, value) pairs.  ``--opt`` is accepted like ``-opt``."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            raise OptionError(f"{prog}: {arg}: invalid option (options start with '-')")
        name = arg.lstrip("-")
        value: str | None = None
        if "=" in name and arg.startswith("--"):
            name, value = name.split("=", 1)
        spec = table.get(name)
        if spec is None:
            raise OptionError(f"{prog}: {arg}: invalid option")
        if spec.takes_value and value is None:
            if i + 1 >= len(argv):
                raise OptionError(f"{prog}: {arg}: requires an argument")
            value = argv[i + 1]
            i += 1
        out.append((spec.name, value))
        i += 1
    return out


def split_keyval(text: str) -> list[str]:
    """Split on single commas; ``,,`` stands for a literal comma."""
    items: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == ",":
            if i + 1 < len(text) and text[i + 1] == ",":
                cur.append(",")
                i += 2
                continue
            items.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    items.append("".join(cur))
    return items


def parse_keyval(text: str, implied_key: str | None = None, option: str = "") -> dict[str, str]:
    """Parse ``a=1,b=2`` into a dict.  The first item may omit its key if implied_key."""
    result: dict[str, str] = {}
    for n, item in enumerate(split_keyval(text)):
        if item == "" and n > 0:
            continue
        if "=" in item:
            key, value = item.split("=", 1)
        elif n == 0 and implied_key is not None:
            key, value = implied_key, item
        else:
            # QEMU treats a bare flag as key=on
            key, value = item, "on"
        if key in result:
            where = f"-{option} " if option else ""
            raise OptionError(f"{where}{text}: parameter '{key}' given twice")
        result[key] = value
    return result


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpPeE]?)[bB]?\s*$")
_SUFFIX = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def parse_size(text: str, default_suffix: str = "", what: str = "size") -> int:
    """QEMU size syntax: a number with an optional k/M/G/T/P/E suffix (binary units)."""
    m = _SIZE_RE.match(text)
    if not m:
        raise OptionError(f"invalid {what} '{text}': expected a number with optional suffix "
                          "k, M, G, T, P or E")
    number, suffix = m.groups()
    suffix = (suffix or default_suffix).lower()
    value = float(number) * (1 << _SUFFIX[suffix]) if "." in number else int(number) << _SUFFIX[
        suffix]
    value = int(value)
    return value


def parse_bool(text: str, what: str) -> bool:
    low = text.lower()
    if low in ("on", "yes", "true", "y", "1"):
        return True
    if low in ("off", "no", "false", "n", "0"):
        return False
    raise OptionError(f"{what}: '{text}' is not a boolean (use on or off)")
