"""Writing a file that a monitor command produces (``memsave``, ``pmemsave``) so that a
failure half way leaves nothing behind.

The data goes to a temporary file in the target's directory, which is renamed over the
target once every byte is written; on any error the temporary file is removed.  A target
that exists and is not a regular file (``/dev/null``, a FIFO a manager reads from) is
written in place: renaming over it would replace the device node with a file.
The new file has mode 0600 (mkstemp's): it holds guest memory, which is private.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable


def _is_special(path: str) -> bool:
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # absent (or unreadable): created fresh below


def save_atomically(path: str, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path``; all or nothing.  Raises OSError for file trouble and
    passes on whatever the chunk source raises, after cleaning up."""
    if _is_special(path):
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pemu-save-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise

