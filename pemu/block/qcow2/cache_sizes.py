"""qcow2's runtime cache options: ``cache-size``, ``l2-cache-size``, ``refcount-cache-size``.

Each cache holds whole tables (a cluster each); a size is rounded down to whole tables
and up to the minimum of two.  Sizes above MAX_CACHE_BYTES are refused: one cached
table costs several times its on-disk size as Python objects, so an option (from a
``blockdev-add`` client) must not be able to make pemu allocate gigabytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.qemuopts.keyval import OptionError, parse_size

from ..errors import BlockError

DEFAULT_L2_CACHE_BYTES = 8 << 20     # covers 64 GiB of guest disk with 64 KiB clusters
DEFAULT_REFCOUNT_CACHE_BYTES = 16 << 20
MAX_CACHE_BYTES = 256 << 20
MIN_CACHE_TABLES = 2
KEYS = ("cache-size", "l2-cache-size", "refcount-cache-size")


@dataclass(frozen=True)
class CacheSizes:
    l2_tables: int
    refcount_blocks: int


def _size(options: dict[str, str], key: str) -> int | None:
    if key not in options:
        return None
    try:
        value = parse_size(options[key], what=key)
    except OptionError as e:
        raise BlockError(str(e)) from None
    if value > MAX_CACHE_BYTES:
        raise BlockError(f"{key} {value} is too big (at most {MAX_CACHE_BYTES >> 20} MiB)")
    return value


def cache_sizes(options: dict[str, str], cluster_size: int) -> CacheSizes:
    total, l2, refcount = (_size(options, k) for k in KEYS)
    if total is not None and l2 is not None and refcount is not None:
        raise BlockError("cache-size, l2-cache-size and refcount-cache-size may not be set "
                         "at the same time")
    if total is not None:
        if l2 is not None and l2 > total:
            raise BlockError("l2-cache-size may not exceed cache-size")
        if refcount is not None and refcount > total:
            raise BlockError("refcount-cache-size may not exceed cache-size")
        if l2 is None and refcount is None:
            refcount = min(DEFAULT_REFCOUNT_CACHE_BYTES, total // 4)
        if l2 is None:
            l2 = total - refcount
        elif refcount is None:
            refcount = total - l2
    l2 = DEFAULT_L2_CACHE_BYTES if l2 is None else l2
    refcount = DEFAULT_REFCOUNT_CACHE_BYTES if refcount is None else refcount
    return CacheSizes(max(MIN_CACHE_TABLES, l2 // cluster_size),
                      max(MIN_CACHE_TABLES, refcount // cluster_size))
