"""pemu-img: create, inspect, check, convert and modify disk images with qemu-img's
command-line syntax and output."""

from __future__ import annotations

import sys

from pemu import __version__

from ..drivers import creatable_formats, supported_formats_line
from ..errors import BlockError
from .chain import cmd_amend, cmd_commit, cmd_measure, cmd_rebase, cmd_resize, cmd_snapshot
from .convert import cmd_compare, cmd_convert, cmd_dd
from .create import cmd_create
from .info import cmd_check, cmd_info, cmd_map
from .util import Flags, ImgError

PROG = "pemu-img"
COMMANDS = {
    "amend": cmd_amend, "check": cmd_check, "commit": cmd_commit, "compare": cmd_compare,
    "convert": cmd_convert, "create": cmd_create, "dd": cmd_dd, "info": cmd_info,
    "map": cmd_map, "measure": cmd_measure, "rebase": cmd_rebase, "resize": cmd_resize,
    "snapshot": cmd_snapshot,
}

_USAGE = f"""usage: {PROG} [standard options] command [command options]
QEMU-compatible disk image utility

Commands:
  create [-f fmt] [-o options] [-b backing_file [-F backing_fmt]] filename [size]
  info [-f fmt] [--output=human|json] [--backing-chain] filename
  check [-f fmt] [--output=human|json] [-r leaks|all] filename
  convert [-c] [-p] [-n] [-S size] [-f fmt] [-O output_fmt] [-o options] [-B backing]
          filename [filename2 [...]] output_filename
  compare [-f fmt] [-F fmt] [-s] [-q] filename1 filename2
  map [-f fmt] [--output=human|json] filename
  resize [-f fmt] [--shrink] filename [+ | -]size
  snapshot [-l | -a snapshot | -c snapshot | -d snapshot] filename
  rebase [-f fmt] [-u] [-p] -b backing_file [-F backing_fmt] filename
  commit [-f fmt] [-b base] [-d] [-p] filename
  amend [-f fmt] -o options filename
  measure [--output=human|json] [-O output_fmt] [-o options] [--size N | [-f fmt] filename]
  dd [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] [skip=blocks] if=input of=output
"""


def usage() -> str:
    """The --help text; its last lines are qemu-img's format list (every driver) and
    the formats pemu-img can write."""
    return (f"{_USAGE}\n{supported_formats_line()}\n"
            f"Writable formats (create, convert -O): {' '.join(creatable_formats())}\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(f"{PROG}: Not enough arguments\nTry '{PROG} --help' for more information",
              file=sys.stderr)
        return 1
    cmd = argv[0]
    if cmd in ("-h", "--help", "help"):
        print(usage(), end="")
        return 0
    if cmd in ("-V", "--version"):
        print(f"{PROG} version {__version__}")
        return 0
    fn = COMMANDS.get(cmd)
    if fn is None:
        print(f"{PROG}: Command not found: {cmd}", file=sys.stderr)
        return 1
    Flags.image_opts = "--image-opts" in argv
    Flags.target_image_opts = "--target-image-opts" in argv
    try:
        return fn(argv[1:])
    except ImgError as e:
        sys.stdout.flush()
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.status
    except BlockError as e:
        sys.stdout.flush()
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
