"""qcow2 amend: change image options in place (``pemu-img amend -o ...``)."""

from __future__ import annotations

import struct

from pemu.qemuopts.keyval import OptionError, parse_bool, parse_size

from ..errors import BlockError
from . import format as fmt
from .driver import Qcow2Node

_SUPPORTED = {"compat", "lazy_refcounts", "backing_file", "backing_fmt", "size"}


def amend_qcow2(node: Qcow2Node, options: dict[str, str]) -> None:
    node.check_writable()
    for key in options:
        if key not in _SUPPORTED:
            if key in ("cluster_size", "encryption", "preallocation", "compression_type",
                       "extended_l2", "refcount_bits", "data_file"):
                raise BlockError(f"Changing the {key} option is not supported")
            raise BlockError(f"Invalid parameter '{key}'")
    h = node.h
    compat = options.get("compat")
    if compat in ("0.10", "v2") and h.version == 3:
        _downgrade(node)
    elif compat in ("1.1", "v3") and h.version == 2:
        h.version = 3
        h.refcount_order = 4
        node.write_header()
    elif compat not in (None, "0.10", "v2", "1.1", "v3"):
        raise BlockError(f"Unknown compatibility level {compat}")
    if "lazy_refcounts" in options:
        try:
            on = parse_bool(options["lazy_refcounts"], "lazy_refcounts")
        except OptionError as e:
            raise BlockError(str(e)) from None
        if on and h.version < 3:
            raise BlockError("Lazy refcounts only supported with compatibility level 1.1 "
                             "and above (use compat=1.1 or greater)")
        if on:
            h.compatible_features |= fmt.COMPAT_LAZY_REFCOUNTS
        else:
            h.compatible_features &= ~fmt.COMPAT_LAZY_REFCOUNTS
        node.lazy_refcounts = on
        node.write_header()
    if "backing_file" in options or "backing_fmt" in options:
        if "backing_file" in options:
            h.backing_file = options["backing_file"] or None
        if "backing_fmt" in options:
            h.backing_format = options["backing_fmt"] or None
        node.write_header()
    if "size" in options:
        try:
            new = parse_size(options["size"])
        except OptionError as e:
            raise BlockError(str(e)) from None
        node.resize(new, shrink=True)
    node.flush()


def _downgrade(node: Qcow2Node) -> None:
    """v3 -> v2: only possible without v3-only features; zero clusters are expanded."""
    h = node.h
    if h.refcount_order != 4:
        raise BlockError("compat=0.10 requires refcount_bits=16")
    if h.compression_type != fmt.COMPRESSION_ZLIB:
        raise BlockError("Cannot downgrade an image with a compression type other than zlib")
    if node.extl2:
        raise BlockError("Cannot downgrade an image with extended L2 entries")
    if node.snapshots:
        raise BlockError("Cannot downgrade an image with internal snapshots")
    if h.incompatible_features & fmt.INCOMPAT_DIRTY:
        raise BlockError("Cannot downgrade a dirty image")
    cs = node.cluster_size
    for i, e in enumerate(node.l1):
        if not e & fmt.OFFSET_MASK:
            continue
        table_off, table = node.l2_for_write(i)
        for j, entry in enumerate(table):
            if entry & fmt.OFLAG_COMPRESSED or not entry & fmt.OFLAG_ZERO:
                continue
            guest = ((i << node.l2_bits) + j) * cs
            if node.backing is None and not entry & fmt.OFFSET_MASK:
                table[j] = 0
                node.file.write(table_off + j * 8, struct.pack(">Q", 0))
            else:
                node.write(guest, bytes(min(cs, node.size - guest)))
    h.version = 2
    h.compatible_features = h.incompatible_features = h.autoclear_features = 0
    node.lazy_refcounts = False
    node.write_header()
