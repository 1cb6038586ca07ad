"""pemu-img create and the shared image-creation entry point."""

from __future__ import annotations

import os

from ..driver_info import BlockDriverInfo
from ..drivers import block_driver
from ..errors import BlockError
from .util import ImgError, Secrets, getopts, open_img, parse_img_size, parse_options_list


def creating_driver(fmt: str) -> BlockDriverInfo:
    try:
        info = block_driver(fmt)
    except BlockError:
        raise ImgError(f"Unknown file format '{fmt}'") from None
    if info.create is None:
        raise ImgError(f"Format driver '{fmt}' does not support image creation")
    return info


def create_image(filename: str, fmt: str, size: int | None, opts: dict[str, str],
                 secrets: Secrets, quiet: bool = False) -> None:
    """Create an image; ``size`` None means 'as big as the backing file'.  What ``-o``
    accepts and how the image is made is the format's declaration (driver_info.py)."""
    info = creating_driver(fmt)
    for k in opts:
        if info.find_create_option(k) is None:
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
    if not quiet:
        print(formatting_line(filename, info, size, opts))
    assert info.create is not None
    try:
        info.create(filename, size, {k: v for k, v in opts.items() if k != "size"},
                    secrets.values)
    except (BlockError, ValueError) as e:
        raise ImgError(f"{filename}: {e}") from None


def formatting_line(filename: str, info: BlockDriverInfo, size: int,
                    opts: dict[str, str]) -> str:
    """The line qemu-img prints: every -o key the format declares, in its order, with
    the value given or else its default (keys with neither are left out)."""
    parts = [f"Formatting '{filename}', fmt={info.name}"]
    for p in info.create_options:
        if p.name == "size":
            value: str | None = str(size)
        elif p.name in opts:
            value = str(parse_img_size(opts[p.name])) if p.type == "size" else opts[p.name]
        else:
            value = p.default
        if value is not None:
            parts.append(f"{p.name}={value}")
    return " ".join(parts)


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
