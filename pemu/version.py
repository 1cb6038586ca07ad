"""pemu's version, and the QEMU release whose command line and QMP it follows.

One place for both: ``-version`` and QMP's greeting and ``query-version`` report them,
and management tools decide features from the QEMU version.  Imports nothing.
"""

from __future__ import annotations

PEMU_VERSION = "0.1.0"
QEMU_COMPAT_VERSION = (7, 2, 0)
