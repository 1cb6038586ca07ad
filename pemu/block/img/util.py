"""Shared helpers for pemu-img subcommands: option parsing, sizes, output."""

from __future__ import annotations

import getopt
import math
import sys

from pemu.crypto.objects import ObjectStore
from pemu.qemuopts.keyval import OptionError, parse_keyval, parse_size

from ..drive import open_image
from ..errors import BlockError, CorruptImageError
from ..node import BlockNode


class ImgError(Exception):
    """Printed as 'pemu-img: MESSAGE' with exit status ``status``."""

    def __init__(self, message: str, status: int = 1, corrupt: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.corrupt = corrupt  # the image's metadata is inconsistent (check: status 2)


def getopts(argv: list[str], short: str, long: list[str]) -> tuple[list[tuple[str, str]],
                                                                   list[str]]:
    try:
        return getopt.gnu_getopt(argv, short, long)
    except getopt.GetoptError as e:
        raise ImgError(str(e)) from None


def parse_img_size(text: str) -> int:
    try:
        size = parse_size(text)
    except OptionError:
        raise ImgError("Invalid image size specified. You may use k, M, G, T, P or E "
                       "suffixes for") from None
    return size


def size_to_str(val: int) -> str:
    """QEMU's human size format: three significant digits, binary units."""
    if val == 0:
        return "0 B"
    _, e = math.frexp(val / (1000.0 / 1024.0))
    i = max(0, int((e - 1) / 10))
    suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][i]
    return f"{_fmt_g3(val / (1 << (i * 10)))} {suffix}B"


def _fmt_g3(x: float) -> str:
    return f"{x:.3g}"


def parse_options_list(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        try:
            out.update(parse_keyval(v))
        except OptionError as e:
            raise ImgError(str(e)) from None
    return out


class Secrets:
    """pemu-img's --object secrets (an encrypted one may name an earlier one's key)."""

    def __init__(self) -> None:
        self.store = ObjectStore()

    @property
    def values(self) -> dict[str, bytes]:
        return self.store.secrets()

    def add_object(self, text: str) -> None:
        try:
            opts = parse_keyval(text, implied_key="qom-type")
            if opts.get("qom-type") != "secret":
                raise BlockError(f"Unsupported object type '{opts.get('qom-type')}'")
            self.store.add(opts)
        except (BlockError, OptionError) as e:
            raise ImgError(str(e)) from None


class Flags:
    """Process-wide switches set from argv by main (qemu-img's --image-opts)."""
    image_opts = False
    target_image_opts = False


def split_image_opts(spec: str) -> tuple[str, str | None, dict[str, str]]:
    """``driver=qcow2,file.filename=x,encrypt.key-secret=s`` -> (filename, fmt, options)."""
    try:
        opts = parse_keyval(spec, implied_key="file")
    except OptionError as e:
        raise ImgError(str(e)) from None
    filename = opts.pop("file.filename", None) or opts.pop("file", None) or \
        opts.pop("filename", None)
    opts.pop("file.driver", None)
    fmt = opts.pop("driver", None)
    if fmt == "file":
        fmt = "raw"
    if not filename:
        raise ImgError(f"{spec}: no file name (file.filename=...)")
    return filename, fmt, opts


def open_img(filename: str, fmt: str | None, read_only: bool = True,
             secrets: Secrets | None = None, options: dict[str, str] | None = None,
             open_backing: bool = True, cache: str = "writeback",
             image_opts: bool | None = None) -> BlockNode:
    if Flags.image_opts if image_opts is None else image_opts:
        filename, fmt2, extra = split_image_opts(filename)
        fmt = fmt2 or fmt
        options = {**(options or {}), **extra}
    try:
        return open_image(filename, fmt=fmt, read_only=read_only,
                          secrets=secrets.values if secrets else None, options=options,
                          open_backing=open_backing, cache=cache)
    except BlockError as e:
        msg = str(e)
        if not msg.startswith(f"Could not open '{filename}'"):
            msg = f"Could not open '{filename}': {msg}"
        raise ImgError(msg, corrupt=isinstance(e, CorruptImageError)) from None


def progress(done: int, total: int, enabled: bool, final: bool = False) -> None:
    if not enabled:
        return
    pct = 100.0 if total == 0 else min(100.0, done * 100.0 / total)
    sys.stdout.write(f"    ({pct:3.2f}/100%)" + ("\n" if final else "\r"))
    sys.stdout.flush()


def chain_nodes(node: BlockNode) -> list[BlockNode]:
    out = []
    n: BlockNode | None = node
    while n is not None:
        out.append(n)
        n = n.backing
    return out
