"""Compressed clusters: zlib (raw deflate, as QEMU writes it) and zstd."""

from __future__ import annotations

import zlib

from ..errors import BlockError
from .format import COMPRESSION_ZLIB, COMPRESSION_ZSTD

try:
    import zstandard
except ImportError:  # pragma: no cover - zstandard is a declared dependency
    zstandard = None


def compress_cluster(kind: int, data: bytes, cluster_size: int) -> bytes | None:
    """Compressed bytes, or None when they would not save space (the cluster is then
    written uncompressed, as QEMU does)."""
    if kind == COMPRESSION_ZLIB:
        c = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -12, 9)
        out = c.compress(data) + c.flush()
    elif kind == COMPRESSION_ZSTD:
        if zstandard is None:
            raise BlockError("zstd compression needs the 'zstandard' package")
        out = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    else:
        raise BlockError(f"unknown compression type {kind}")
    return out if len(out) < cluster_size else None


def decompress_cluster(kind: int, data: bytes, cluster_size: int) -> bytes:
    """Inflate one cluster; the input may carry trailing bytes of a neighbour."""
    try:
        if kind == COMPRESSION_ZLIB:
            d = zlib.decompressobj(-15)
            out = d.decompress(data, cluster_size)
        elif kind == COMPRESSION_ZSTD:
            if zstandard is None:
                raise BlockError("zstd compressed clusters need the 'zstandard' package")
            d = zstandard.ZstdDecompressor().decompressobj()
            out = d.decompress(data)
        else:
            raise BlockError(f"unknown compression type {kind}")
    except (zlib.error, ValueError, EOFError) as e:
        raise BlockError(f"qcow2: could not decompress cluster: {e}") from None
    except Exception as e:  # zstandard.ZstdError has no stable import path across versions
        if zstandard is not None and isinstance(e, zstandard.ZstdError):
            raise BlockError(f"qcow2: could not decompress cluster: {e}") from None
        raise
    if len(out) < cluster_size:
        raise BlockError("qcow2: compressed cluster is truncated or corrupt")
    return out[:cluster_size]
