"""blkdebug: fault injection in front of an image, configured like QEMU's blkdebug
(``[inject-error]`` sections in a config file, or ``inject-error.N.key=value``)."""

from __future__ import annotations

import errno as errno_mod
import os
import re
from dataclasses import dataclass

from pemu.qom.registry import Property

from .driver_info import declare
from .errors import BlockError
from .node import BlockNode, Extent

EVENTS = {"read_aio", "write_aio", "flush_to_disk", "discard", "write_zeroes",
          "pwrite_zeroes"}


@dataclass
class InjectRule:
    event: str
    errno: int = errno_mod.EIO
    sector: int | None = None
    once: bool = False
    fired: bool = False

    def matches(self, event: str, offset: int, length: int) -> bool:
        if self.fired and self.once:
            return False
        if event != self.event and not (event == "write_zeroes" and
                                        self.event == "pwrite_zeroes"):
            return False
        if self.sector is not None:
            start = self.sector * 512
            if not (offset < start + 512 and start < offset + max(length, 1)):
                return False
        return True


def _bool(v: str) -> bool:
    return v.lower() in ("on", "true", "yes", "1")


def _rule(fields: dict[str, str]) -> InjectRule:
    event = fields.get("event")
    if event not in EVENTS:
        raise BlockError(f"blkdebug: unsupported event '{event}' (supported: "
                         f"{', '.join(sorted(EVENTS))})")
    try:
        return InjectRule(event, int(fields.get("errno", errno_mod.EIO)),
                          int(fields["sector"]) if "sector" in fields else None,
                          _bool(fields.get("once", "off")))
    except ValueError:
        raise BlockError("blkdebug: errno and sector must be numbers") from None


def parse_config(text: str) -> list[InjectRule]:
    rules: list[InjectRule] = []
    section: str | None = None
    fields: dict[str, str] = {}

    def finish() -> None:
        if section == "inject-error":
            rules.append(_rule(fields))
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"\[([\w-]+)\]", line)
        if m:
            finish()
            section, fields = m.group(1), {}
            continue
        if "=" not in line or section is None:
            raise BlockError(f"blkdebug config: cannot parse '{raw.strip()}'")
        k, v = (x.strip() for x in line.split("=", 1))
        fields[k] = v.strip('"')
    finish()
    return rules


class BlkdebugNode(BlockNode):
    format_name = "blkdebug"

    def __init__(self, child: BlockNode, opts: dict[str, str]) -> None:
        self.child = child
        self.filename = child.filename
        self.read_only = child.read_only
        self.rules: list[InjectRule] = []
        if "config" in opts:
            try:
                with open(opts["config"]) as f:
                    self.rules += parse_config(f.read())
            except OSError as e:
                raise BlockError(f"Could not read blkdebug config file "
                                 f"'{opts['config']}': {e.strerror}") from None
        inline: dict[str, dict[str, str]] = {}
        for k, v in opts.items():
            m = re.fullmatch(r"inject-error\.(\d+)\.([\w-]+)", k)
            if m:
                inline.setdefault(m.group(1), {})[m.group(2)] = v
        for _, fields in sorted(inline.items(), key=lambda kv: int(kv[0])):
            self.rules.append(_rule(fields))

    @property
    def size(self) -> int:  # type: ignore[override]
        return self.child.size

    def _inject(self, event: str, offset: int = 0, length: int = 0) -> None:
        for r in self.rules:
            if r.matches(event, offset, length):
                r.fired = True
                raise BlockError(f"blkdebug: injected error on {event} at offset {offset}: "
                                 f"{os.strerror(r.errno)}", errno=r.errno)

    def read(self, offset: int, length: int) -> bytes:
        self._inject("read_aio", offset, length)
        return self.child.read(offset, length)

    def readv(self, offset: int, buffers: list[memoryview]) -> None:
        self._inject("read_aio", offset, sum(len(b) for b in buffers))
        self.child.readv(offset, buffers)

    def write(self, offset: int, data) -> None:
        self._inject("write_aio", offset, len(data))
        self.child.write(offset, data)

    def writev(self, offset: int, buffers: list[memoryview]) -> None:
        self._inject("write_aio", offset, sum(len(b) for b in buffers))
        self.child.writev(offset, buffers)

    def write_zeroes(self, offset: int, length: int, may_unmap: bool = False) -> None:
        self._inject("write_zeroes", offset, length)
        self.child.write_zeroes(offset, length, may_unmap)

    def discard(self, offset: int, length: int) -> None:
        self._inject("discard", offset, length)
        self.child.discard(offset, length)

    def flush(self) -> None:
        self._inject("flush_to_disk")
        self.child.flush()

    def block_status(self, offset: int, length: int) -> Extent:
        return self.child.block_status(offset, length)

    def close(self) -> None:
        self.child.close()


def take_options(opts: dict[str, str]) -> dict[str, str]:
    """Remove and return the keys of a -drive/-blockdev line that configure blkdebug
    (``config``, ``align``, ``inject-error.N.*``, ``set-state.N.*``)."""
    return {k: opts.pop(k) for k in list(opts)
            if k in ("config", "align") or k.startswith(("inject-error", "set-state"))}


def open_blkdebug(image: BlockNode, options: dict[str, str] | None = None,
                  **_ignored) -> BlkdebugNode:
    """blkdebug goes on top of the opened image (QEMU puts it under the format; the
    errors a guest sees are the same)."""
    return BlkdebugNode(image, options or {})


declare("blkdebug", "fault injection for tests", protocol=True, open=open_blkdebug,
        properties=(Property("config", "str", description="path to the configuration file"),
                    Property("align", "int", description="required alignment for requests"),
                    Property("image", "str", description="the image to inject errors into")))
