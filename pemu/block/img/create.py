"""pemu-img create and the shared image-creation entry point."""

from __future__ import annotations

import os

from pemu.qemuopts.keyval import OptionError, parse_bool

from ..errors import BlockError
from ..file import FileNode
from .util import ImgError, Secrets, getopts, open_img, parse_img_size, parse_options_list

QCOW2_OPTS = ("size", "compat", "backing_file", "backing_fmt", "encryption", "encrypt.format",
              "encrypt.key-secret", "encrypt.cipher-alg", "encrypt.cipher-mode",
              "encrypt.ivgen-alg", "encrypt.ivgen-hash-alg", "encrypt.hash-alg",
              "encrypt.iter-time", "cluster_size", "preallocation", "lazy_refcounts",
              "refcount_bits", "compression_type", "extended_l2")
LUKS_OPTS = ("size", "key-secret", "cipher-alg", "cipher-mode", "ivgen-alg", "ivgen-hash-alg",
             "hash-alg", "iter-time", "preallocation")
RAW_OPTS = ("size", "preallocation")


def _bool_opt(opts: dict, key: str, default: bool = False) -> bool:
    if key not in opts:
        return default
    try:
        return parse_bool(opts[key], key)
    except OptionError as e:
        raise ImgError(str(e)) from None


def create_image(filename: str, fmt: str, size: int | None, opts: dict[str, str],
                 secrets: Secrets, quiet: bool = False) -> None:
    """Create an image; ``size`` None means 'as big as the backing file'."""
    allowed = {"qcow2": QCOW2_OPTS, "raw": RAW_OPTS, "luks": LUKS_OPTS}.get(fmt)
    if allowed is None:
        raise ImgError(f"Format driver '{fmt}' does not support image creation")
    for k in opts:
        if k not in allowed:
            raise ImgError(f"Invalid parameter '{k}'")
    if "size" in opts:
        size = parse_img_size(opts["size"])
    backing = opts.get("backing_file")
    backing_fmt = opts.get("backing_fmt")
    if backing and backing_fmt is None:
        raise ImgError(f"{filename}: Backing file specified without backing format")
    if backing and size is None:
        path = backing if os.path.isabs(backing) else os.path.join(os.path.dirname(filename),
                                                                   backing)
        b = open_img(path, backing_fmt, read_only=True, secrets=secrets,
                     options={"no-io": "on"}, open_backing=False)
        size = b.size
        b.close()
    if size is None:
        raise ImgError("Image creation needs a size parameter")
    size = -(-size // 512) * 512
    prealloc = opts.get("preallocation", "off")
    if not quiet:
        print(_formatting_line(filename, fmt, size, opts))
    try:
        if fmt == "raw":
            create_raw(filename, size, prealloc)
        elif fmt == "luks":
            from ..luks import create_luks
            create_luks(filename, size, opts, secrets.values)
        else:
            from ..qcow2.create import create_qcow2
            encrypt = None
            if opts.get("encrypt.format") or _bool_opt(opts, "encryption"):
                if opts.get("encrypt.format", "luks") != "luks":
                    raise ImgError("Only encrypt.format=luks is supported")
                encrypt = {k[len("encrypt."):]: v for k, v in opts.items()
                           if k.startswith("encrypt.")}
            create_qcow2(filename, size,
                         cluster_size=parse_img_size(opts.get("cluster_size", "65536")),
                         backing_file=backing, backing_fmt=backing_fmt,
                         compression_type=opts.get("compression_type", "zlib"),
                         preallocation=prealloc,
                         lazy_refcounts=_bool_opt(opts, "lazy_refcounts"),
                         refcount_bits=int(opts.get("refcount_bits", "16")),
                         compat=opts.get("compat", "1.1"),
                         extended_l2=_bool_opt(opts, "extended_l2"),
                         encrypt=encrypt, secrets=secrets.values)
    except BlockError as e:
        raise ImgError(f"{filename}: {e}") from None
    except ValueError as e:
        raise ImgError(f"{filename}: {e}") from None


_ENCRYPT_KEYS = ("format", "key-secret", "cipher-alg", "cipher-mode", "ivgen-alg",
                 "ivgen-hash-alg", "hash-alg", "iter-time")


def _formatting_line(filename: str, fmt: str, size: int, opts: dict[str, str]) -> str:
    """The line qemu-img prints: defaults plus given options, in the driver's order."""
    parts = [f"Formatting '{filename}', fmt={fmt}"]
    if fmt == "qcow2":
        parts += [f"encrypt.{k}={opts[f'encrypt.{k}']}" for k in _ENCRYPT_KEYS
                  if f"encrypt.{k}" in opts]
        parts.append(f"cluster_size={parse_img_size(opts.get('cluster_size', '65536'))}")
        parts.append(f"extended_l2={opts.get('extended_l2', 'off')}")
        if "preallocation" in opts:
            parts.append(f"preallocation={opts['preallocation']}")
        parts.append(f"compression_type={opts.get('compression_type', 'zlib')}")
        parts.append(f"size={size}")
        parts += [f"{k}={opts[k]}" for k in ("compat", "backing_file", "backing_fmt")
                  if k in opts]
        parts.append(f"lazy_refcounts={opts.get('lazy_refcounts', 'off')}")
        parts.append(f"refcount_bits={opts.get('refcount_bits', '16')}")
    else:
        parts.append(f"size={size}")
        if fmt == "raw" and "preallocation" in opts:
            parts.append(f"preallocation={opts['preallocation']}")
        if fmt == "luks":
            parts += [f"{k}={opts[k]}" for k in _ENCRYPT_KEYS[1:] if k in opts]
    return " ".join(parts)


def create_raw(filename: str, size: int, prealloc: str = "off") -> None:
    if prealloc not in ("off", "falloc", "full"):
        raise BlockError(f"Invalid parameter '{prealloc}' for preallocation")
    f = FileNode(filename, create=True)
    try:
        f.truncate(size)
        if prealloc == "falloc" and size:
            os.posix_fallocate(f.fd, 0, size)
        elif prealloc == "full":
            chunk = bytes(1 << 20)
            for p in range(0, size, len(chunk)):
                f.write(p, chunk[:min(len(chunk), size - p)])
    finally:
        f.close()


def cmd_create(argv: list[str]) -> int:
    opts, args = getopts(argv, "F:b:f:ho:qu", ["object="])
    fmt = "raw"
    o_values: list[str] = []
    secrets = Secrets()
    backing = backing_fmt = None
    quiet = False
    for o, v in opts:
        if o == "-f":
            fmt = v
        elif o == "-o":
            o_values.append(v)
        elif o == "-b":
            backing = v
        elif o == "-F":
            backing_fmt = v
        elif o == "-q":
            quiet = True
        elif o == "--object":
            secrets.add_object(v)
    if not args:
        raise ImgError("Expecting image file name")
    options = parse_options_list(o_values)
    if backing:
        options["backing_file"] = backing
    if backing_fmt:
        options["backing_fmt"] = backing_fmt
    size = parse_img_size(args[1]) if len(args) > 1 else None
    if len(args) > 2:
        raise ImgError("Unexpected argument: " + args[2])
    create_image(args[0], fmt, size, options, secrets, quiet)
    return 0
