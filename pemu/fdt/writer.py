"""A flattened device tree (DTB, version 17) writer.

Boards describe themselves to the kernel/firmware with a tree of nodes and properties;
this module builds that tree in Python and serializes it:

  header (40 bytes) | memory reservation block | structure block | strings block

Structure tokens: BEGIN_NODE (name, NUL, pad to 4) ... PROP (len, nameoff, value,
pad) ... END_NODE, closed by END.  All integers are big-endian.  Property names are
deduplicated in the strings block.
"""

from __future__ import annotations

import re
import struct

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE = 1
FDT_END_NODE = 2
FDT_PROP = 3
FDT_END = 9
FDT_VERSION = 17
FDT_LAST_COMP_VERSION = 16
HEADER_SIZE = 40

_NODE_NAME = re.compile(r"^[A-Za-z0-9,._+\-]+(@[A-Za-z0-9,._+\-]+)?$")
_PROP_NAME = re.compile(r"^[A-Za-z0-9,._+?#\-]+$")


class FDTError(ValueError):
    """A tree that cannot be represented (bad name, duplicate node, bad value)."""


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


class Node:
    """One device tree node: ordered properties and children."""

    def __init__(self, fdt: FDT, name: str, parent: Node | None) -> None:
        self.fdt = fdt
        self.name = name
        self.parent = parent
        self.props: dict[str, bytes] = {}
        self.children: dict[str, Node] = {}
        self._phandle: int | None = None

    @property
    def path(self) -> str:
        if self.parent is None:
            return "/"
        parent = self.parent.path
        return f"{parent.rstrip('/')}/{self.name}"

    # -- building ---------------------------------------------------------------------
    def add_node(self, name: str) -> Node:
        if not _NODE_NAME.match(name) or len(name) > 127:
            raise FDTError(f"invalid node name '{name}'")
        if name in self.children:
            raise FDTError(f"node {self.path.rstrip('/')}/{name} already exists")
        node = Node(self.fdt, name, self)
        self.children[name] = node
        return node

    def node(self, name: str) -> Node:
        """An existing child, or a new one."""
        return self.children.get(name) or self.add_node(name)

    def set_bytes(self, name: str, value: bytes) -> Node:
        if not _PROP_NAME.match(name) or len(name) > 127:
            raise FDTError(f"invalid property name '{name}'")
        self.props[name] = bytes(value)
        return self

    def set_empty(self, name: str) -> Node:
        """A boolean property (present means true), e.g. ``interrupt-controller``."""
        return self.set_bytes(name, b"")

    def set_u32(self, name: str, *values: int) -> Node:
        """One or more 32-bit cells: ``<a b c>``."""
        for v in values:
            if not 0 <= v <= 0xFFFFFFFF:
                raise FDTError(f"property {name}: {v} does not fit in 32 bits")
        return self.set_bytes(name, struct.pack(f">{len(values)}I", *values))

    def set_u64(self, name: str, *values: int) -> Node:
        """Each value as two cells (high, low): ``reg = <0x0 0x80000000 ...>``."""
        for v in values:
            if not 0 <= v < 1 << 64:
                raise FDTError(f"property {name}: {v} does not fit in 64 bits")
        return self.set_bytes(name, struct.pack(f">{len(values)}Q", *values))

    def set_cells(self, name: str, values: list[tuple[int, int]]) -> Node:
        """Mixed cell counts: ``[(value, ncells), ...]`` for reg/ranges of any width."""
        out = bytearray()
        for value, cells in values:
            if not 0 <= value < 1 << (32 * cells):
                raise FDTError(f"property {name}: {value} does not fit in {cells} cells")
            out += value.to_bytes(4 * cells, "big")
        return self.set_bytes(name, bytes(out))

    def set_string(self, name: str, *strings: str) -> Node:
        """One string, or a string list (``compatible = "a", "b"``)."""
        if not strings:
            raise FDTError(f"property {name}: no strings given")
        out = bytearray()
        for s in strings:
            data = s.encode()
            if b"\0" in data:
                raise FDTError(f"property {name}: string contains NUL")
            out += data + b"\0"
        return self.set_bytes(name, bytes(out))

    def phandle(self) -> int:
        """This node's phandle, allocated (and its property set) on first use."""
        if self._phandle is None:
            self._phandle = self.fdt.next_phandle()
            self.set_u32("phandle", self._phandle)
        return self._phandle

    # -- serialization ----------------------------------------------------------------
    def _emit(self, out: bytearray, strings: StringTable) -> None:
        out += struct.pack(">I", FDT_BEGIN_NODE)
        out += _pad4(self.name.encode() + b"\0")
        for name, value in self.props.items():
            out += struct.pack(">III", FDT_PROP, len(value), strings.offset(name))
            out += _pad4(value)
        for child in self.children.values():
            child._emit(out, strings)
        out += struct.pack(">I", FDT_END_NODE)


class StringTable:
    def __init__(self) -> None:
        self.data = bytearray()
        self._offsets: dict[str, int] = {}

    def offset(self, name: str) -> int:
        if name not in self._offsets:
            self._offsets[name] = len(self.data)
            self.data += name.encode() + b"\0"
        return self._offsets[name]


class FDT:
    """A device tree under construction: ``fdt.root`` is the "/" node."""

    def __init__(self, boot_cpuid: int = 0) -> None:
        self.root = Node(self, "", None)
        self.boot_cpuid = boot_cpuid
        self.reservations: list[tuple[int, int]] = []
        self._last_phandle = 0

    def next_phandle(self) -> int:
        self._last_phandle += 1
        return self._last_phandle

    def add_reservation(self, address: int, size: int) -> None:
        """A /memreserve/ entry: RAM the OS must not touch (e.g. firmware)."""
        if size <= 0 or not 0 <= address < 1 << 64 or address + size > 1 << 64:
            raise FDTError(f"bad memory reservation 0x{address:x}+0x{size:x}")
        self.reservations.append((address, size))

    def find(self, path: str) -> Node:
        """The node at an absolute path like ``/soc/serial@10000000``."""
        node = self.root
        for part in filter(None, path.split("/")):
            try:
                node = node.children[part]
            except KeyError:
                raise FDTError(f"no node {path}") from None
        return node

    def to_bytes(self) -> bytes:
        strings = StringTable()
        struct_block = bytearray()
        self.root._emit(struct_block, strings)
        struct_block += struct.pack(">I", FDT_END)
        rsv = b"".join(struct.pack(">QQ", a, s) for a, s in self.reservations)
        rsv += struct.pack(">QQ", 0, 0)
        off_rsv = HEADER_SIZE  # already 8-aligned, as the spec requires
        off_struct = off_rsv + len(rsv)
        off_strings = off_struct + len(struct_block)
        total = off_strings + len(strings.data)
        header = struct.pack(">10I", FDT_MAGIC, total, off_struct, off_strings, off_rsv,
                             FDT_VERSION, FDT_LAST_COMP_VERSION, self.boot_cpuid,
                             len(strings.data), len(struct_block))
        return header + rsv + bytes(struct_block) + bytes(strings.data)
