"""HMP's migration settings: ``migrate_set_parameter``, ``migrate_set_capability``,
``info migrate_parameters`` and ``info migrate_capabilities``, with QEMU's argument
syntax, error lines and output format.  The values are checked and stored by
pemu/monitor/migrate_settings.py, the same code QMP uses.

QEMU's HMP reads sizes its own way: ``max-bandwidth 100`` is 100 MiB/s (the unit
defaults to MiB), ``downtime-limit 1k`` is 1024 ms, a fraction needs a unit above
bytes, and only on/off names a capability state.
"""

from __future__ import annotations

import re

from pemu.monitor.errors import QMPError
from pemu.monitor.migrate import Migration
from pemu.monitor.migrate_settings import (
    MIGRATION_CAPABILITIES,
    PARAMETER_TYPES,
    query_capabilities,
    set_capabilities,
    set_parameters,
)


class HMPArgumentError(Exception):
    """Bad command syntax: QEMU prints the line without "Error: " and a hint."""

    def __init__(self, command: str, why: str) -> None:
        super().__init__(f'{why}\nTry "help {command}" for more information\n')


_ESCAPES = {"n": "\n", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_SIZE = re.compile(r"(0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?)([bBkKmMgGtTpPeE]?)")
_SHIFTS = {"b": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_SIZE_HELP = ("expects a non-negative number below 2^64\nOptional suffix k, M, G, T, P "
              "or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.")


class HMPArguments:
    """QEMU's HMP argument reader over one command's text."""

    def __init__(self, command: str, text: str) -> None:
        self.command, self.text, self.pos = command, text, 0

    def string(self) -> str:
        """A word, or a "quoted string" with \\ escapes."""
        word = self._word()
        if word is None:
            raise HMPArgumentError(self.command, f"{self.command}: string expected")
        return word

    def on_off(self) -> bool:
        word = self._word()
        if word not in ("on", "off"):
            raise HMPArgumentError(self.command, "Expected 'on' or 'off'")
        return word == "on"

    def end(self) -> None:
        if self.text[self.pos:].strip():
            raise HMPArgumentError(self.command,
                                   f"{self.command}: extraneous characters at the end of line")

    def _word(self) -> str | None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            self.pos = pos
            return None
        if text[pos] == '"':
            word, self.pos = _quoted(self.command, text, pos + 1)
            return word
        end = pos
        while end < len(text) and not text[end].isspace():
            end += 1
        self.pos = end
        return text[pos:end]


def _quoted(command: str, text: str, pos: int) -> tuple[str, int]:
    out = []
    while pos < len(text) and text[pos] != '"':
        if text[pos] == "\\" and pos + 1 < len(text):
            if text[pos + 1] not in _ESCAPES:
                raise HMPArgumentError(command, f"unsupported escape code: '\\{text[pos + 1]}'")
            out.append(_ESCAPES[text[pos + 1]])
            pos += 2
        else:
            out.append(text[pos])
            pos += 1
    if pos == len(text):
        raise HMPArgumentError(command, "unterminated string")
    return "".join(out), pos + 1


def parse_size(text: str, default_unit: str) -> int | None:
    """QEMU's size syntax (qemu_strtosz): decimal or 0x hex, a fraction, one unit letter
    (binary multiples); None when it is not one."""
    m = _SIZE.fullmatch(text)
    if m is None:
        return None
    number, unit = m.groups()
    shift = _SHIFTS[(unit or default_unit).lower()]
    if number[:2].lower() == "0x":
        value = int(number, 16) << shift
    elif "." in number:
        if shift == 0:
            return None  # no fraction of a byte
        value = int(float(number) * (1 << shift))
    else:
        value = int(number) << shift
    return value if value < 1 << 64 else None


def set_parameter(mig: Migration, text: str) -> None:
    args = HMPArguments("migrate_set_parameter", text)
    name, value = args.string(), args.string()
    args.end()
    if name not in PARAMETER_TYPES:
        raise QMPError(f"invalid parameter value: {name}")
    converted: int | str = value
    if name == "max-bandwidth":
        size = parse_size(value, "m")
        if size is None:
            raise QMPError(f"Invalid size {value}")
        converted = size
    elif PARAMETER_TYPES[name] == "int":
        size = parse_size(value, "b")
        if size is None:
            raise QMPError(f"Parameter '{name}' {_SIZE_HELP}")
        converted = size
    set_parameters(mig, {name: converted})


def set_capability(mig: Migration, text: str) -> None:
    args = HMPArguments("migrate_set_capability", text)
    name, state = args.string(), args.on_off()
    args.end()
    if name not in MIGRATION_CAPABILITIES:
        raise QMPError(f"invalid parameter value: {name}")
    set_capabilities(mig, {name: state})


def info_parameters(mig: Migration) -> str:
    p = mig.parameters
    lines = [f"tls-creds: '{p['tls-creds']}'", f"tls-hostname: '{p['tls-hostname']}'",
             f"max-bandwidth: {p['max-bandwidth']} bytes/second",
             f"downtime-limit: {p['downtime-limit']} ms",
             f"tls-authz: '{p['tls-authz']}'", f"mode: {p['mode']}"]
    return "".join(line + "\n" for line in lines)


def info_capabilities(mig: Migration) -> str:
    return "".join(f"{c['capability']}: {'on' if c['state'] else 'off'}\n"
                   for c in query_capabilities(mig))


__all__ = ["HMPArgumentError", "HMPArguments", "info_capabilities", "info_parameters",
           "parse_size", "set_capability", "set_parameter"]
