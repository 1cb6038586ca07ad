"""Creating qcow2 images (the ``qemu-img create -f qcow2`` options)."""

from __future__ import annotations

import os
import struct

from pemu.qemuopts.keyval import OptionError, parse_bool, parse_size

from ..errors import BlockError
from ..file import FileNode
from ..luks import setup_qcow2_encryption
from . import format as fmt
from .driver import Qcow2Node
from .format import Header
from .refcount import RefcountCodec

PREALLOC_MODES = ("off", "metadata", "falloc", "full")


def create_qcow2(path: str, size: int, cluster_size: int = 65536, backing_file: str | None = None,
                 backing_fmt: str | None = None, compression_type: str = "zlib",
                 preallocation: str = "off", lazy_refcounts: bool = False,
                 refcount_bits: int = 16, compat: str = "1.1", extended_l2: bool = False,
                 encrypt: dict | None = None, secrets: dict[str, bytes] | None = None) -> None:
    if cluster_size & (cluster_size - 1) or not 512 <= cluster_size <= (2 << 20):
        raise BlockError("Cluster size must be a power of two between 512 and 2048k")
    if refcount_bits & (refcount_bits - 1) or not 1 <= refcount_bits <= 64:
        raise BlockError("Refcount width must be a power of two and may not exceed 64 bits")
    if compat in ("0.10", "v2"):
        version = 2
    elif compat in ("1.1", "v3"):
        version = 3
    else:
        raise BlockError(f"Invalid compatibility level: '{compat}'")
    if version == 2:
        if refcount_bits != 16:
            raise BlockError("Different refcount widths than 16 bits require compatibility "
                             "level 1.1 or above (use compat=1.1 or greater)")
        if lazy_refcounts:
            raise BlockError("Lazy refcounts only supported with compatibility level 1.1 "
                             "and above (use compat=1.1 or greater)")
        if compression_type != "zlib":
            raise BlockError("Compression type selection is only supported with compatibility "
                             "level 1.1 and above (use compat=1.1 or greater)")
        if extended_l2:
            raise BlockError("Extended L2 entries are only supported with compatibility "
                             "level 1.1 and above")
    if extended_l2 and cluster_size < 16384:
        raise BlockError("Extended L2 entries are only supported with cluster sizes of at "
                         "least 16384 bytes")
    if compression_type not in ("zlib", "zstd"):
        raise BlockError(f"Invalid parameter '{compression_type}' for compression_type")
    if preallocation not in PREALLOC_MODES:
        raise BlockError(f"Invalid parameter '{preallocation}' for preallocation")
    if backing_file and preallocation != "off":
        raise BlockError("Backing file and preallocation can only be used at the same time "
                         "if extended_l2 is on")
    if size % 512:
        raise BlockError("Image size must be a multiple of 512 bytes")
    if size > fmt.MAX_VIRTUAL_SIZE:
        raise BlockError("Image size is too large")
    cb = cluster_size.bit_length() - 1
    order = refcount_bits.bit_length() - 1
    h = Header(version=version, cluster_bits=cb, size=0, refcount_order=order,
               refcount_table_offset=cluster_size, refcount_table_clusters=1,
               backing_file=backing_file, backing_format=backing_fmt)
    if version == 3:
        if compression_type == "zstd":
            h.compression_type = fmt.COMPRESSION_ZSTD
            h.incompatible_features |= fmt.INCOMPAT_COMPRESSION
        if extended_l2:
            h.incompatible_features |= fmt.INCOMPAT_EXTL2
        if lazy_refcounts:
            h.compatible_features |= fmt.COMPAT_LAZY_REFCOUNTS
    header = h.pack()
    reftable = struct.pack(">Q", 2 * cluster_size)
    codec = RefcountCodec(order, cluster_size)
    blk = codec.new_block()
    for i in range(3):
        codec.set(blk, i, 1)
    refblock = bytes(blk)
    file = FileNode(path, create=True)
    try:
        file.write(0, header + bytes(cluster_size - len(header)))
        file.write(cluster_size, reftable + bytes(cluster_size - 8))
        file.write(2 * cluster_size, refblock)
        node = Qcow2Node(file, read_only=False, check_mode=True)
    except BaseException:
        file.close()
        raise
    try:
        if encrypt:
            setup_qcow2_encryption(node, encrypt, secrets or {})
        node.resize(size)
        if preallocation != "off":
            _preallocate(node, preallocation)
        node.flush()
    finally:
        node.close()


def _preallocate(node, mode: str) -> None:
    """Allocate every cluster (metadata: L2 entries only; falloc/full: data too)."""
    cs = node.cluster_size
    total = -(-node.size // cs)
    if total == 0:
        return
    host = node.refcounts.alloc(total)
    for c0 in range(0, total, node.l2_size):
        n = min(node.l2_size, total - c0)
        table_off, table = node.l2_for_write(c0 >> node.l2_bits)
        first = c0 & (node.l2_size - 1)
        for x in range(n):
            table[first + x] = (host + (c0 + x) * cs) | fmt.OFLAG_COPIED
        node._write_l2_entries(table_off, table, first, n)
    end = host + total * cs
    if mode == "metadata":
        if node.file.size < end:
            node.file.truncate(end)
    elif mode == "falloc":
        os.posix_fallocate(node.file.fd, host, total * cs)
        node.file.refresh_size()
    else:
        chunk = bytes(1 << 20)
        for p in range(host, end, len(chunk)):
            node.file.write(p, chunk[:min(len(chunk), end - p)])


def _bool_option(opts: dict[str, str], key: str) -> bool:
    try:
        return parse_bool(opts[key], key) if key in opts else False
    except OptionError as e:
        raise BlockError(str(e)) from None


def _size_option(opts: dict[str, str], key: str, default: str) -> int:
    try:
        return parse_size(opts.get(key, default))
    except OptionError as e:
        raise BlockError(str(e)) from None


def create_qcow2_from_options(filename: str, size: int, opts: dict[str, str],
                              secrets: dict[str, bytes]) -> None:
    """pemu-img create's ``-o`` keys (see the qcow2 declaration) to ``create_qcow2``."""
    encrypt = None
    if opts.get("encrypt.format") or _bool_option(opts, "encryption"):
        if opts.get("encrypt.format", "luks") != "luks":
            raise BlockError("Only encrypt.format=luks is supported")
        encrypt = {k[len("encrypt."):]: v for k, v in opts.items() if k.startswith("encrypt.")}
    try:
        refcount_bits = int(opts.get("refcount_bits", "16"))
    except ValueError:
        raise BlockError("Parameter 'refcount_bits' expects a number") from None
    create_qcow2(filename, size,
                 cluster_size=_size_option(opts, "cluster_size", "65536"),
                 backing_file=opts.get("backing_file"), backing_fmt=opts.get("backing_fmt"),
                 compression_type=opts.get("compression_type", "zlib"),
                 preallocation=opts.get("preallocation", "off"),
                 lazy_refcounts=_bool_option(opts, "lazy_refcounts"),
                 refcount_bits=refcount_bits, compat=opts.get("compat", "1.1"),
                 extended_l2=_bool_option(opts, "extended_l2"),
                 encrypt=encrypt, secrets=secrets)
