"""pemu-img resize, snapshot, rebase, commit, amend and measure."""

from __future__ import annotations

import json
import os

from ..errors import BlockError
from ..node import BlockNode
from ..qcow2 import snapshots as snap
from ..qcow2.amend import amend_qcow2
from .info import chain_status, image_info, snapshot_table_lines
from .util import (
    ImgError,
    Secrets,
    getopts,
    open_img,
    parse_img_size,
    parse_options_list,
    progress,
)


def _require_qcow2(node: BlockNode, what: str) -> None:
    if node.format_name != "qcow2":
        raise ImgError(f"Format driver '{node.format_name}' does not support {what}")


def cmd_resize(argv: list[str]) -> int:
    if not argv:
        raise ImgError("Expecting image file name and size")
    size_text, argv = argv[-1], argv[:-1]
    opts, args = getopts(argv, "f:hqU", ["object=", "shrink", "preallocation=", "image-opts"])
    fmt, shrink, quiet = None, False, False
    prealloc = "off"
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "--shrink":
            shrink = True
        elif o == "--preallocation":
            if v not in ("off", "metadata", "falloc", "full"):
                raise ImgError(f"Invalid preallocation mode: '{v}'")
            prealloc = v
        elif o == "-q":
            quiet = True
        elif o == "--object":
            secrets.add_object(v)
    if len(args) != 1:
        raise ImgError("Expecting image file name and size")
    node = open_img(args[0], fmt, read_only=False, secrets=secrets)
    try:
        rel = size_text[0] if size_text[:1] in ("+", "-") else ""
        n = parse_img_size(size_text[1:] if rel else size_text)
        new = node.size + n if rel == "+" else node.size - n if rel == "-" else n
        if new < 0:
            raise ImgError("New image size must be positive")
        if new < node.size and not shrink:
            raise ImgError("Use the --shrink option to perform a shrink operation.")
        if prealloc != "off" and node.format_name != "raw":
            raise ImgError(f"Unsupported preallocation mode '{prealloc}' for "
                           f"{node.format_name} images")
        try:
            old_size = node.size
            node.resize(new, shrink=shrink)
            if prealloc in ("falloc", "full") and new > old_size:
                _preallocate_raw(node, old_size, new - old_size, prealloc)
            node.flush()
        except BlockError as e:
            raise ImgError(str(e)) from None
    finally:
        node.close()
    if not quiet:
        print("Image resized.")
    return 0


def _preallocate_raw(node: BlockNode, offset: int, length: int, mode: str) -> None:
    if mode == "falloc":
        os.posix_fallocate(node.file.fd, offset, length)
        return
    chunk = bytes(1 << 20)
    for p in range(offset, offset + length, len(chunk)):
        node.write(p, chunk[:min(len(chunk), offset + length - p)])


def cmd_snapshot(argv: list[str]) -> int:
    opts, args = getopts(argv, "la:c:d:f:hqU", ["object=", "force-share", "image-opts"])
    fmt = None
    action = name = None
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o in ("-l", "-a", "-c", "-d"):
            if action is not None:
                raise ImgError("Cannot mix '-l', '-a', '-c', '-d'")
            action, name = o, v
        elif o == "--object":
            secrets.add_object(v)
    if len(args) != 1:
        raise ImgError("Expecting one image file name")
    action = action or "-l"
    node = open_img(args[0], fmt, read_only=action == "-l", secrets=secrets,
                    open_backing=action != "-l")
    try:
        _require_qcow2(node, "internal snapshots")
        try:
            if action == "-l":
                d = image_info(node, args[0])
                if d.get("snapshots"):
                    print("\n".join(snapshot_table_lines(d["snapshots"])))
            elif action == "-c":
                snap.create_snapshot(node, name)
            elif action == "-a":
                try:
                    snap.apply_snapshot(node, name)
                except BlockError as e:
                    raise ImgError(f"Could not apply snapshot '{name}': {e}") from None
            elif action == "-d":
                try:
                    snap.delete_snapshot(node, name)
                except BlockError as e:
                    raise ImgError(f"Could not delete snapshot '{name}': {e}") from None
        except BlockError as e:
            raise ImgError(f"Could not create snapshot '{name}': {e}") from None
    finally:
        node.close()
    return 0


def cmd_rebase(argv: list[str]) -> int:
    opts, args = getopts(argv, "hf:F:b:upt:T:qU", ["object=", "force-share", "image-opts"])
    fmt = backing_fmt = None
    backing: str | None = None
    unsafe = show = False
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "-F":
            backing_fmt = v
        elif o == "-b":
            backing = v
        elif o == "-u":
            unsafe = True
        elif o == "-p":
            show = True
        elif o == "--object":
            secrets.add_object(v)
    if len(args) != 1:
        raise ImgError("Expecting one image file name")
    if backing is None:
        raise ImgError("Must specify backing file (-b)")
    filename = args[0]
    node = open_img(filename, fmt, read_only=False, secrets=secrets, open_backing=not unsafe)
    try:
        _require_qcow2(node, "changing the backing file")
        new_path = None
        if backing:
            new_path = backing if os.path.isabs(backing) else \
                os.path.join(os.path.dirname(filename), backing)
        if backing and backing_fmt is None:
            probe = open_img(new_path, None, read_only=True, secrets=secrets,
                             options={"no-io": "on"}, open_backing=False)
            backing_fmt = probe.format_name
            probe.close()
        if not unsafe:
            new = open_img(new_path, backing_fmt, read_only=True, secrets=secrets) \
                if backing else None
            try:
                _rebase_copy(node, new, show)
            except BlockError as e:
                raise ImgError(str(e)) from None
            finally:
                if new is not None:
                    new.close()
        node.h.backing_file = backing or None
        node.h.backing_format = backing_fmt if backing else None
        try:
            node.write_header()
            node.flush()
        except BlockError as e:
            raise ImgError(f"Could not change the backing file to '{backing}': {e}") from None
    finally:
        node.close()
    return 0


def _rebase_copy(node, new: BlockNode | None, show: bool) -> None:
    """Copy into ``node`` every cluster the old backing chain and the new one disagree on."""
    old = node.backing
    cs = node.cluster_size
    size = node.size
    pos = 0
    step = 1 << 20
    while pos < size:
        n = min(step, size - pos)
        ext = node.block_status(pos, n)
        n = ext.length
        if not ext.allocated:
            a = _read_or_zero(old, pos, n)
            b = _read_or_zero(new, pos, n)
            if a != b:
                for off in range(0, n, cs):
                    seg_a, seg_b = a[off:off + cs], b[off:off + cs]
                    if seg_a != seg_b:
                        node.write(pos + off, seg_a)
        pos += n
        progress(pos, size, show)
    progress(size, size, show, final=True)


def _read_or_zero(node: BlockNode | None, pos: int, n: int) -> bytes:
    if node is None or pos >= node.size:
        return bytes(n)
    m = min(n, node.size - pos)
    return node.read(pos, m) + bytes(n - m)


def cmd_commit(argv: list[str]) -> int:
    opts, args = getopts(argv, "f:ht:b:dpqr:", ["object=", "image-opts"])
    fmt = base_name = None
    drop = show = quiet = False
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "-b":
            base_name = v
            drop = True
        elif o == "-d":
            drop = True
        elif o == "-p":
            show = True
        elif o == "-q":
            quiet = True
        elif o == "--object":
            secrets.add_object(v)
    if len(args) != 1:
        raise ImgError("Expecting one image file name")
    top = open_img(args[0], fmt, read_only=drop, secrets=secrets)
    try:
        if top.backing is None:
            raise ImgError("Image does not have a backing file")
        chain = []
        n = top
        while n.backing is not None:
            chain.append(n)
            n = n.backing
            if base_name is None or os.path.abspath(n.filename) == os.path.abspath(base_name):
                break
        else:
            if base_name is not None:
                raise ImgError(f"Did not find '{base_name}' in the backing chain of "
                               f"'{args[0]}'")
        base_ro = n
        base = open_img(base_ro.filename, base_ro.format_name, read_only=False,
                        secrets=secrets, open_backing=False)
        try:
            if base.size < top.size:
                base.resize(top.size)
            size = top.size
            pos = 0
            while pos < size:
                st = chain_status(top, pos, min(1 << 20, size - pos))
                length = st["length"]
                if st["present"] and st["depth"] < len(chain):
                    base.write(pos, top.read(pos, length))
                pos += length
                progress(pos, size, show and not quiet)
            base.flush()
            progress(size, size, show and not quiet, final=True)
        except BlockError as e:
            raise ImgError(f"Block job failed: {e}") from None
        finally:
            base.close()
        if not drop and top.format_name == "qcow2":
            top._unmap_range(0, -(-top.size // top.cluster_size) * top.cluster_size)
            top.flush()
    finally:
        top.close()
    if not quiet:
        print("Image committed.")
    return 0


def cmd_amend(argv: list[str]) -> int:
    opts, args = getopts(argv, "ho:f:t:pqU", ["object=", "force", "image-opts"])
    fmt = None
    o_values: list[str] = []
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "-o":
            o_values.append(v)
        elif o == "--object":
            secrets.add_object(v)
    if len(args) != 1:
        raise ImgError("Expecting one image file name")
    if not o_values:
        raise ImgError("Must specify options (-o)")
    options = parse_options_list(o_values)
    node = open_img(args[0], fmt, read_only=False, secrets=secrets, open_backing=False)
    try:
        _require_qcow2(node, "amend")
        try:
            amend_qcow2(node, options)
        except BlockError as e:
            raise ImgError(str(e)) from None
    finally:
        node.close()
    return 0


def _refcount_metadata_size(clusters: int, cs: int, order: int) -> int:
    per_table = cs // 8
    per_block = cs * 8 // (1 << order)
    table = blocks = 0
    n = 0
    while True:
        last = n
        blocks = -(-(clusters + table + blocks) // per_block)
        table = -(-blocks // per_table)
        n = clusters + blocks + table
        if n == last:
            break
    return (blocks + table) * cs


def qcow2_prealloc_size(total: int, cs: int, order: int, extl2: bool) -> int:
    """Bytes of a fully allocated qcow2 image (QEMU's estimate, same arithmetic)."""
    l2e = 16 if extl2 else 8
    aligned = -(-total // cs) * cs
    meta = cs
    nl2e = aligned // cs
    nl2e = -(-nl2e // (cs // l2e)) * (cs // l2e)
    meta += nl2e * l2e
    nl1e = nl2e * l2e // cs
    nl1e = -(-nl1e // (cs // 8)) * (cs // 8)
    meta += nl1e * 8
    meta += _refcount_metadata_size((meta + aligned) // cs, cs, order)
    return meta + aligned


def cmd_measure(argv: list[str]) -> int:
    opts, args = getopts(argv, "hf:O:o:l:U", ["output=", "size=", "object=", "force-share",
                                              "image-opts"])
    fmt, out_fmt, output = None, "raw", "human"
    size = None
    o_values: list[str] = []
    secrets = Secrets()
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "-O":
            out_fmt = v
        elif o == "-o":
            o_values.append(v)
        elif o == "--output":
            output = v
        elif o == "--size":
            size = parse_img_size(v)
        elif o == "--object":
            secrets.add_object(v)
    if (size is None) == (not args):
        raise ImgError("Either --size N or one filename must be specified.")
    options = parse_options_list(o_values)
    src = open_img(args[0], fmt, read_only=True, secrets=secrets) if args else None
    try:
        result = _measure(src, size, out_fmt, options)
    finally:
        if src is not None:
            src.close()
    if output == "json":
        print(json.dumps(result, indent=4))
    else:
        print(f"required size: {result['required']}")
        print(f"fully allocated size: {result['fully-allocated']}")
        if "bitmaps" in result:
            print(f"bitmaps size: {result['bitmaps']}")
    return 0


def _measure(src: BlockNode | None, size: int | None, out_fmt: str, options: dict) -> dict:
    if out_fmt == "raw":
        req = -(-(src.size if src is not None else size) // 512) * 512
        return {"required": req, "fully-allocated": req}
    if out_fmt != "qcow2":
        raise ImgError(f"Format driver '{out_fmt}' does not support size measurement")
    cs = parse_img_size(options.get("cluster_size", "65536"))
    order = int(options.get("refcount_bits", "16")).bit_length() - 1
    extl2 = options.get("extended_l2", "off") == "on"
    if src is not None:
        ssize = src.size
        virtual = -(-ssize // cs) * cs
        required = 0
        pos = 0
        while pos < ssize:
            st = chain_status(src, pos, ssize - pos)
            pnum = st["length"]
            if st["zero"] and not st["data"]:
                pass
            elif st["data"] and st["present"]:
                pnum = -(-(pos + pnum) // cs) * cs - pos
                required += pos % cs + pnum
            pos += pnum
    else:
        # an empty new image needs no data clusters unless fully preallocated
        virtual = -(-size // cs) * cs
        required = virtual if options.get("preallocation") in ("falloc", "full") else 0
    full = qcow2_prealloc_size(virtual, cs, order, extl2)
    result = {"required": full - virtual + required, "fully-allocated": full}
    if src is not None and src.format_name == "qcow2" and \
            options.get("compat", "1.1") not in ("0.10", "v2"):
        result = {"bitmaps": 0, **result}
    return result
