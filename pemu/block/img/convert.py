"""pemu-img convert, dd and compare: copying and comparing guest data."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from ..backend import is_zero
from ..errors import BlockError
from ..node import BlockNode
from .create import create_image, creating_driver
from .info import chain_status
from .util import (
    Flags,
    ImgError,
    Secrets,
    getopts,
    open_img,
    parse_img_size,
    parse_options_list,
    progress,
)

CHUNK = 2 << 20


def write_sparse(target: BlockNode, offset: int, buf: bytes | bytearray, gran: int) -> None:
    """Write ``buf``, skipping zero blocks of ``gran`` bytes (aligned to the target)."""
    if gran <= 0:
        target.write(offset, buf)
        return
    n = len(buf)
    mv = memoryview(buf)
    pos = 0
    run_start = -1
    while pos < n:
        nxt = min(n, (offset + pos) // gran * gran + gran - offset)
        zero = is_zero(buf[pos:nxt])
        if not zero and run_start < 0:
            run_start = pos
        elif zero and run_start >= 0:
            target.write(offset + run_start, mv[run_start:pos])
            run_start = -1
        pos = nxt
    if run_start >= 0:
        target.write(offset + run_start, mv[run_start:n])


def copy_image(sources: list[BlockNode], target: BlockNode, compress: bool = False,
               sparse: int = 4096, target_zeroed: bool = True, top_only: bool = False,
               show_progress: bool = False) -> None:
    total = sum(s.size for s in sources)
    cs = getattr(target, "cluster_size", 0)
    gran = max(sparse, cs) if sparse and cs else sparse
    chunk = CHUNK if not cs else max(CHUNK // cs, 1) * cs
    done = 0
    base = 0
    progress(0, total, show_progress)
    for src in sources:
        pos = 0
        while pos < src.size:
            want = min(chunk - (base + pos) % chunk, src.size - pos)
            st = chain_status(src, pos, want)
            n = st["length"]
            data_here = st["present"] and not (st["zero"] and not st["data"])
            if top_only and st["depth"] > 0:
                data_here = False
            if not data_here:
                if not target_zeroed and not top_only:
                    target.write_zeroes(base + pos, n)
            else:
                buf = src.read(pos, n)
                if compress:
                    _write_compressed(target, base + pos, buf)
                elif not target_zeroed or top_only:
                    target.write(base + pos, buf)
                else:
                    write_sparse(target, base + pos, buf, gran)
            pos += n
            done += n
            progress(done, total, show_progress)
        base += src.size
    target.flush()
    progress(total, total, show_progress, final=True)


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    return _POOL


def _write_compressed(target: BlockNode, offset: int, buf: bytes) -> None:
    """Compress the clusters of ``buf`` in parallel (zlib/zstd drop the GIL), then
    store them in order."""
    cs = target.cluster_size
    pieces = []
    pos = 0
    while pos < len(buf):
        g = offset + pos
        c0 = g // cs * cs
        end = min(len(buf), c0 + cs - offset)
        piece = buf[pos:end]
        if not is_zero(piece):
            pieces.append((g, g == c0, piece))
        pos = end
    # a short last piece is padded with zeros, which the fresh target holds anyway
    futures = [_pool().submit(target.compress, p) if whole else None
               for _, whole, p in pieces]
    for (g, whole, piece), fut in zip(pieces, futures, strict=True):
        if whole:
            target.write_compressed(g, piece, fut.result())
        else:
            target.write(g, piece)


def _snapshot_param(text: str) -> str:
    """-l accepts 'snapshot.id=ID', 'snapshot.name=NAME' or a bare id-or-name."""
    if "=" not in text:
        return text
    opts = parse_options_list([text])
    name = opts.get("snapshot.name") or opts.get("snapshot.id")
    if not name:
        raise ImgError(f"Invalid snapshot parameter '{text}'")
    return name


def cmd_convert(argv: list[str]) -> int:
    opts, args = getopts(argv, "hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:",
                         ["object=", "target-is-zero", "salvage", "force-share",
                          "image-opts", "target-image-opts", "bitmaps", "skip-broken-bitmaps"])
    src_fmt, out_fmt = None, "raw"
    o_values: list[str] = []
    compress = show = skip_create = quiet = False
    sparse = 4096
    backing = backing_fmt = None
    target_is_zero = False
    cache = "unsafe"    # qemu-img convert's default for the target
    snapshot = None
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            src_fmt = v
        elif o == "-t":
            cache = v
        elif o == "-l":
            snapshot = _snapshot_param(v)
        elif o == "-O":
            out_fmt = v
        elif o == "-o":
            o_values.append(v)
        elif o == "-c":
            compress = True
        elif o == "-p":
            show = True
        elif o == "-q":
            quiet = True
        elif o == "-n":
            skip_create = True
        elif o == "-S":
            sparse = parse_img_size(v)
            if sparse % 512:
                raise ImgError("Invalid buffer size for sparse output specified. Valid sizes "
                               "are multiples of 512 up to 16M.")
        elif o == "-B":
            backing = v
        elif o == "-F":
            backing_fmt = v
        elif o == "--target-is-zero":
            target_is_zero = True
        elif o == "--object":
            secrets.add_object(v)
    if quiet:
        show = False
    if len(args) < 2:
        raise ImgError("Expecting image file name")
    src_names, target_name = args[:-1], args[-1]
    options = parse_options_list(o_values)
    if backing:
        options["backing_file"] = backing
        if backing_fmt:
            options["backing_fmt"] = backing_fmt
    if compress and not creating_driver(out_fmt).compression:
        raise ImgError("Compression not supported for this file format")
    sources = []
    try:
        for name in src_names:
            sources.append(open_img(name, src_fmt, read_only=True, secrets=secrets))
            if snapshot is not None:
                if sources[-1].format_name != "qcow2":
                    raise ImgError("This format does not support internal snapshots")
                try:
                    sources[-1].load_snapshot_read_only(snapshot)
                except BlockError as e:
                    raise ImgError(f"Failed to load snapshot: {e}") from None
        total = sum(s.size for s in sources)
        if not skip_create:
            if options.get("backing_file") and "backing_fmt" not in options:
                options["backing_fmt"] = "qcow2" if out_fmt == "qcow2" else "raw"
            create_image(target_name, out_fmt, total, options, secrets, quiet=True)
        target = open_img(target_name, out_fmt, read_only=False, secrets=secrets,
                          options={k: v for k, v in options.items()
                                   if k in ("encrypt.key-secret", "key-secret")},
                          image_opts=Flags.target_image_opts, cache=cache)
        try:
            if skip_create and target.size < total:
                raise ImgError("output file is smaller than input file")
            copy_image(sources, target, compress=compress, sparse=sparse,
                       target_zeroed=(not skip_create and getattr(target, "zero_init", True))
                       or target_is_zero,
                       top_only=bool(backing), show_progress=show)
        finally:
            target.close()
    except BlockError as e:
        raise ImgError(str(e)) from None
    finally:
        for s in sources:
            s.close()
    return 0


def cmd_compare(argv: list[str]) -> int:
    opts, args = getopts(argv, "hf:F:T:pqsU", ["object=", "force-share", "image-opts"])
    fmt1 = fmt2 = None
    strict = quiet = show = False
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt1 = v
        elif o == "-F":
            fmt2 = v
        elif o == "-s":
            strict = True
        elif o == "-q":
            quiet = True
        elif o == "-p":
            show = True
        elif o == "--object":
            secrets.add_object(v)
    if len(args) != 2:
        raise ImgError("Expecting two image file names")
    try:
        a = open_img(args[0], fmt1, read_only=True, secrets=secrets)
    except ImgError as e:
        e.status = 2
        raise
    try:
        b = open_img(args[1], fmt2, read_only=True, secrets=secrets)
    except ImgError as e:
        a.close()
        e.status = 2
        raise
    try:
        return _compare(a, b, args, strict, quiet, show and not quiet)
    except BlockError as e:
        raise ImgError(str(e), status=4) from None
    finally:
        a.close()
        b.close()


def _first_diff(x: bytes, y: bytes) -> int:
    for i in range(0, len(x), 512):
        if x[i:i + 512] != y[i:i + 512]:
            return i
    return 0


def _compare(a: BlockNode, b: BlockNode, names: list[str], strict: bool, quiet: bool,
             show: bool) -> int:
    def say(msg: str) -> None:
        if not quiet:
            print(msg)

    if a.size != b.size:
        if strict:
            say("Strict mode: Image size mismatch!")
            return 1
        say("Warning: Image size mismatch!")
    common = min(a.size, b.size)
    total = max(a.size, b.size)
    pos = 0
    while pos < common:
        n = min(CHUNK, common - pos)
        sa, sb = chain_status(a, pos, n), chain_status(b, pos, n)
        n = min(sa["length"], sb["length"])
        za = not sa["present"] or (sa["zero"] and not sa["data"])
        zb = not sb["present"] or (sb["zero"] and not sb["data"])
        if not (za and zb):
            x, y = a.read(pos, n), b.read(pos, n)
            if x != y:
                if strict and (za != zb):
                    say(f"Strict mode: Offset {pos + _first_diff(x, y)} block status mismatch!")
                    return 1
                say(f"Content mismatch at offset {pos + _first_diff(x, y)}!")
                return 1
        pos += n
        progress(pos, total, show)
    longer = a if a.size > b.size else b
    while pos < longer.size:
        n = min(CHUNK, longer.size - pos)
        st = chain_status(longer, pos, n)
        n = st["length"]
        if st["present"] and not (st["zero"] and not st["data"]):
            data = longer.read(pos, n)
            if not is_zero(data):
                off = pos + _first_diff(data, bytes(n))
                say(f"Content mismatch at offset {off}!")
                return 1
        pos += n
    progress(total, total, show, final=True)
    say("Images are identical.")
    return 0


def cmd_dd(argv: list[str]) -> int:
    """qemu-img dd [-f fmt] [-O fmt] if=IN of=OUT [bs=N] [count=N] [skip=N]"""
    opts, args = getopts(argv, "hf:O:U", ["object=", "force-share", "image-opts"])
    src_fmt, out_fmt = None, "raw"
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            src_fmt = v
        elif o == "-O":
            out_fmt = v
        elif o == "--object":
            secrets.add_object(v)
    params: dict[str, str] = {}
    for a in args:
        if "=" not in a:
            raise ImgError(f"unrecognized operand {a}")
        k, v = a.split("=", 1)
        if k not in ("if", "of", "bs", "count", "skip"):
            raise ImgError(f"unrecognized operand {a}")
        params[k] = v
    if "if" not in params or "of" not in params:
        raise ImgError("Must specify both input and output files")
    bs = parse_img_size(params.get("bs", "512"))
    if bs <= 0:
        raise ImgError(f"invalid number: '{params['bs']}'")
    src = open_img(params["if"], src_fmt, read_only=True, secrets=secrets)
    try:
        skip = int(params.get("skip", "0")) * bs
        # qemu-img dd: the output holds min(count*bs, input size) minus the skipped part
        total = src.size
        if "count" in params:
            total = min(total, int(params["count"]) * bs)
        size = max(0, total - skip)
        if os.path.exists(params["of"]):
            os.unlink(params["of"])
        create_image(params["of"], out_fmt, size, {}, secrets, quiet=True)
        dst = open_img(params["of"], out_fmt, read_only=False, secrets=secrets)
        try:
            pos = 0
            while pos < size:
                n = min(max(bs, CHUNK // bs * bs), size - pos)
                write_sparse(dst, pos, src.read(skip + pos, n), 0 if out_fmt != "raw" else 4096)
                pos += n
            dst.flush()
        finally:
            dst.close()
    except BlockError as e:
        raise ImgError(str(e)) from None
    finally:
        src.close()
    sys.stdout.flush()
    return 0
