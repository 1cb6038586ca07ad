"""Opening drives: ``-drive``/``-blockdev`` option dicts to a BlockBackend, and image
files (with their backing chains) to node graphs for pemu-img."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable

from pemu.qemuopts.keyval import OptionError, parse_bool, parse_keyval, parse_size

from .backend import BlockBackend
from .errors import BlockError
from .file import FileNode
from .node import BlockNode
from .probe import probe_format
from .raw import RawNode

CACHE_MODES = ("writeback", "none", "writethrough", "directsync", "unsafe")
# keys a -drive line may carry that concern the device or bookkeeping, not the image
_DEVICE_KEYS = {"if", "id", "index", "bus", "unit", "media", "serial", "node-name", "werror",
                "rerror", "boot", "addr", "copy-on-read", "auto-read-only", "force-share"}
MAX_BACKING_DEPTH = 64

FormatOpener = Callable[..., BlockNode]


def _format_opener(fmt: str) -> FormatOpener:
    if fmt == "raw":
        return lambda file, **kw: RawNode(file, offset=kw.get("offset", 0), size=kw.get("size"))
    if fmt == "qcow2":
        from .qcow2 import open_qcow2
        return open_qcow2
    if fmt == "luks":
        from .luks import open_luks
        return open_luks
    if fmt in ("vmdk", "vhdx", "vpc"):
        from . import foreign
        return foreign.OPENERS[fmt]
    raise BlockError(f"Unknown driver '{fmt}'")


SUPPORTED_FORMATS = ("raw", "qcow2", "luks", "vmdk", "vhdx", "vpc")


def open_image(filename: str, fmt: str | None = None, read_only: bool = False,
               cache: str = "writeback", secrets: dict[str, bytes] | None = None,
               options: dict[str, str] | None = None, open_backing: bool = True,
               depth: int = 0, file: BlockNode | None = None) -> BlockNode:
    """Open an image file (and its backing chain) as a node graph."""
    if depth > MAX_BACKING_DEPTH:
        raise BlockError(f"Backing chain of '{filename}' is too deep (a loop?)")
    if fmt is not None and fmt not in SUPPORTED_FORMATS:
        raise BlockError(f"Unknown driver '{fmt}'")
    if file is None:
        file = FileNode(filename, read_only=read_only, cache=cache)
    try:
        if fmt is None:
            fmt = probe_format(file)
        opener = _format_opener(fmt)
        kw: dict = {"read_only": read_only, "secrets": secrets or {}, "options": options or {},
                    "cache": cache, "open_backing": open_backing, "depth": depth}
        return opener(file, **kw)
    except BaseException:
        file.close()
        raise


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
    secrets = secrets or {}
    for key in _DEVICE_KEYS:
        opts.pop(key, None)
    fmt = opts.pop("format", None)
    driver = opts.pop("driver", None)
    filename = opts.pop("file", None) or opts.pop("file.filename", None) or \
        opts.pop("filename", None)
    opts.pop("file.driver", None)
    if driver == "file":
        driver = None
        fmt = fmt or "raw"
    elif driver == "blkdebug":
        pass
    elif driver is not None:
        fmt = fmt or driver
        driver = None
    if filename and filename.startswith("blkdebug:"):
        # -drive file=blkdebug:CONFIG:IMAGE
        _, config, filename = filename.split(":", 2)
        driver = "blkdebug"
        opts.setdefault("config", config)
    if driver == "blkdebug":
        filename = filename or opts.pop("image.filename", None) or opts.pop("image", None)
        opts.pop("image.driver", None)
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
    blkdebug_opts = {}
    if driver == "blkdebug":
        blkdebug_opts = {k: opts.pop(k) for k in list(opts)
                         if k in ("config", "align") or k.startswith("inject-error")
                         or k.startswith("set-state")}
    image_opts = {k: v for k, v in opts.items()}

    node = open_image(filename, fmt=fmt, read_only=read_only or snapshot, cache=cache,
                      secrets=secrets, options=image_opts)
    on_close = None
    if blkdebug_opts or driver == "blkdebug":
        from .blkdebug import BlkdebugNode
        node = BlkdebugNode(node, blkdebug_opts)
    if snapshot:
        node, on_close = _temporary_overlay(node)
    throttle = None
    if throttle_opts:
        from .throttle import Throttle
        throttle = Throttle.from_options(throttle_opts)
    be = BlockBackend(node, read_only=read_only, discard=discard,
                      detect_zeroes=detect_zeroes, throttle=throttle, on_close=on_close)
    if fmt is None and node.format_name == "raw":
        print(f"WARNING: Image format was not specified for '{filename}' and probing "
              "guessed raw.\n         Automatically detecting the format is dangerous for raw "
              "images, write operations on block 0 will be restricted.\n         Specify the "
              "'raw' format explicitly to remove the restrictions.", file=sys.stderr)
        be.guard_probe = True
    return be


def _temporary_overlay(base: BlockNode) -> tuple[BlockNode, Callable[[], None] | None]:
    """snapshot=on: writes go to a throw-away qcow2 overlay; the image is untouched."""
    from .qcow2.create import create_qcow2
    from .qcow2.driver import Qcow2Node

    fd, path = tempfile.mkstemp(prefix="pemu-snapshot-", suffix=".qcow2")
    os.close(fd)
    try:
        create_qcow2(path, base.size)
        file = FileNode(path, cache="unsafe")
        overlay = Qcow2Node(file, read_only=False, open_backing=False)
        overlay.backing = base
    finally:
        os.unlink(path)  # the open descriptor keeps it alive until close
    return overlay, None


def parse_secret_object(text: str) -> tuple[str, bytes]:
    """``-object secret,id=ID,data=...|file=...[,format=raw|base64]``"""
    opts = parse_keyval(text, implied_key="qom-type")
    if opts.get("qom-type") != "secret":
        raise BlockError(f"Unsupported object type '{opts.get('qom-type')}'")
    sid = opts.get("id")
    if not sid:
        raise BlockError("Parameter 'id' is missing")
    if "data" in opts:
        data = opts["data"].encode()
    elif "file" in opts:
        try:
            with open(opts["file"], "rb") as f:
                data = f.read()
        except OSError as e:
            raise BlockError(f"Unable to read secret file '{opts['file']}': {e.strerror}") \
                from None
    else:
        raise BlockError("Either 'data' or 'file' must be provided")
    if opts.get("format", "raw") == "base64":
        import base64
        data = base64.b64decode(data)
    return sid, data


__all__ = ["open_drive", "open_image", "parse_secret_object", "parse_size"]
