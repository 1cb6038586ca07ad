"""Opening drives: ``-drive``/``-blockdev`` option dicts to a BlockBackend, and image
files (with their backing chains) to node graphs for pemu-img."""

from __future__ import annotations

import sys

from pemu.crypto.objects import ObjectStore, user_objects
from pemu.qemuopts.keyval import OptionError, parse_bool, parse_keyval, parse_size
from pemu.qom.registry import RegistryError, check_values

from . import blkdebug
from .backend import BlockBackend
from .driver_info import BlockDriverInfo
from .drivers import block_driver, format_driver, probe_format
from .errors import BlockError
from .node import BlockNode
from .overlay import temporary_overlay
from .throttle import Throttle

CACHE_MODES = ("writeback", "none", "writethrough", "directsync", "unsafe")
# keys a -drive line may carry that concern the device or bookkeeping, not the image
_DEVICE_KEYS = {"if", "id", "index", "bus", "unit", "media", "serial", "node-name", "werror",
                "rerror", "boot", "addr", "copy-on-read", "auto-read-only", "force-share"}
MAX_BACKING_DEPTH = 64
# the protocol under every format node; driver=file alone means a raw image over it
DEFAULT_PROTOCOL = "file"
PLAIN_FORMAT = "raw"


def open_image(filename: str, fmt: str | None = None, read_only: bool = False,
               cache: str = "writeback", secrets: dict[str, bytes] | None = None,
               options: dict[str, str] | None = None, open_backing: bool = True,
               depth: int = 0, file: BlockNode | None = None,
               strict: bool = False) -> BlockNode:
    """Open an image file (and its backing chain) as a node graph; ``fmt`` None probes
    the format from the first bytes, as QEMU does.  ``strict``: ``options`` come from
    the user, and one the format does not declare is refused."""
    if depth > MAX_BACKING_DEPTH:
        raise BlockError(f"Backing chain of '{filename}' is too deep (a loop?)")
    driver = format_driver(fmt) if fmt is not None else None
    if file is None:
        file = block_driver(DEFAULT_PROTOCOL).open(filename, read_only=read_only, cache=cache)
    try:
        if driver is None:
            driver = format_driver(probe_format(file))
        if strict:
            _check_options(driver, options or {})
        return driver.open(file, read_only=read_only, secrets=secrets or {},
                           options=options or {}, cache=cache,
                           open_backing=open_image if open_backing else None, depth=depth)
    except BaseException:
        file.close()
        raise


def _check_options(driver: BlockDriverInfo, options: dict[str, str]) -> None:
    """QEMU's refusal of an option the format (or, for ``file.KEY``, the protocol)
    does not take."""
    protocol = block_driver(DEFAULT_PROTOCOL)
    for key, value in options.items():
        owner, name = driver, key
        if key.startswith(f"{DEFAULT_PROTOCOL}."):
            owner, name = protocol, key[len(DEFAULT_PROTOCOL) + 1:]
        if owner.find_property(name) is None:
            kind = "protocol" if owner.protocol else "format"
            raise BlockError(f"Block {kind} '{owner.name}' does not support the option "
                             f"'{name}'")
        try:
            check_values(owner, {name: value})
        except RegistryError as e:
            raise BlockError(str(e)) from None


def _bool(opts: dict[str, str], key: str, default: bool = False) -> bool:
    if key not in opts:
        return default
    try:
        return parse_bool(opts[key], key)
    except OptionError as e:
        raise BlockError(str(e)) from None


def _choice(opts: dict[str, str], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = opts.get(key, default)
    if value not in allowed:
        raise BlockError(f"Parameter '{key}' does not accept value '{value}' "
                         f"(expected one of: {', '.join(allowed)})")
    return value


def open_drive(opts: dict[str, str], secrets: dict[str, bytes] | None = None) -> BlockBackend:
    """Turn parsed ``-drive``/``-blockdev`` keys into a BlockBackend.

    Accepts both spellings: ``file=disk.qcow2,format=qcow2`` (-drive) and
    ``driver=qcow2,file.filename=disk.qcow2`` or ``driver=file,filename=disk.img``
    (-blockdev).  See docs/BLOCK.md for the full key list.
    """
    opts = dict(opts)
    if secrets is None:  # the -object secrets of the command line
        secrets = user_objects().secrets()
    for key in _DEVICE_KEYS:
        opts.pop(key, None)
    fmt = opts.pop("format", None)
    driver = opts.pop("driver", None)
    filename = opts.pop("file", None) or opts.pop("file.filename", None) or \
        opts.pop("filename", None)
    opts.pop("file.driver", None)
    if filename and filename.startswith("blkdebug:"):
        # -drive file=blkdebug:CONFIG:IMAGE
        _, config, filename = filename.split(":", 2)
        driver = "blkdebug"
        opts.setdefault("config", config)
    filter_driver = None  # a protocol driver that goes over the image (blkdebug)
    if driver is not None:
        info = block_driver(driver)
        if info.name == DEFAULT_PROTOCOL:
            fmt = fmt or PLAIN_FORMAT
        elif info.protocol:
            filter_driver = info
        else:
            fmt = fmt or driver
    if fmt is not None:
        format_driver(fmt)  # an unknown format fails before any file is opened
    filter_opts: dict[str, str] = {}
    if filter_driver is not None:
        filename = filename or opts.pop("image.filename", None) or opts.pop("image", None)
        opts.pop("image.driver", None)
        filter_opts = blkdebug.take_options(opts)
    if not filename:
        raise BlockError("A drive needs a file name (file=...)")

    cache = _choice(opts, "cache", CACHE_MODES, "writeback")
    opts.pop("cache", None)
    if "cache.direct" in opts or "cache.no-flush" in opts:
        # -blockdev spells the cache mode as two booleans
        if _bool(opts, "cache.no-flush"):
            cache = "unsafe"
        elif _bool(opts, "cache.direct"):
            cache = "none"
        for key in ("cache.direct", "cache.no-flush", "cache.writeback"):
            opts.pop(key, None)
    _choice(opts, "aio", ("threads", "native", "io_uring"), "threads")
    opts.pop("aio", None)
    read_only = _bool(opts, "read-only") or _bool(opts, "readonly")
    opts.pop("read-only", None)
    opts.pop("readonly", None)
    snapshot = _bool(opts, "snapshot")
    opts.pop("snapshot", None)
    discard = opts.pop("discard", "ignore")
    if discard in ("on", "unmap"):
        discard = "unmap"
    elif discard in ("off", "ignore"):
        discard = "ignore"
    else:
        raise BlockError(f"Invalid discard option '{discard}' (use ignore or unmap)")
    detect_zeroes = _choice(opts, "detect-zeroes", ("off", "on", "unmap"), "off")
    opts.pop("detect-zeroes", None)
    throttle_opts = {k: opts.pop(k) for k in list(opts) if k.startswith("throttling.")}
    image_opts = dict(opts)

    node = open_image(filename, fmt=fmt, read_only=read_only or snapshot, cache=cache,
                      secrets=secrets, options=image_opts, strict=True)
    if filter_driver is not None:
        node = filter_driver.open(node, options=filter_opts)
    if snapshot:
        node = temporary_overlay(node)
    throttle = Throttle.from_options(throttle_opts) if throttle_opts else None
    be = BlockBackend(node, read_only=read_only, discard=discard,
                      detect_zeroes=detect_zeroes, throttle=throttle)
    if fmt is None and node.format_name == "raw":
        print(f"WARNING: Image format was not specified for '{filename}' and probing "
              "guessed raw.\n         Automatically detecting the format is dangerous for raw "
              "images, write operations on block 0 will be restricted.\n         Specify the "
              "'raw' format explicitly to remove the restrictions.", file=sys.stderr)
        be.guard_probe = True
    return be


def parse_secret_object(text: str) -> tuple[str, bytes]:
    """``-object secret,id=ID,data=...|file=...[,format=raw|base64]`` on its own (no
    ``keyid``: an encrypted secret needs the store that holds its key, see Secrets)."""

    opts = parse_keyval(text, implied_key="qom-type")
    if opts.get("qom-type") != "secret":
        raise BlockError(f"Unsupported object type '{opts.get('qom-type')}'")
    store = ObjectStore()
    try:
        store.add(opts)
    except OptionError as e:
        raise BlockError(str(e)) from None
    return opts["id"], store.secret(opts["id"])


__all__ = ["open_drive", "open_image", "parse_secret_object", "parse_size"]
