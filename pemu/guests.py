"""Where the shared guest images live (kernels, initramfs, busybox, disk image).

``$PEMU_GUESTS`` if set, else ``../shared/guests`` beside the checkout, as the
project's guests README lays them out.  Tests, benchmarks and the default-guest
script all ask here, so a checkout anywhere finds them.
"""

from __future__ import annotations

import os
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[1]


def guests_dir() -> Path:
    env = os.environ.get("PEMU_GUESTS")
    return Path(env) if env else _CHECKOUT.parent / "shared" / "guests"


def guest_file(relative: str) -> Path:
    """A guest artifact by its path inside the guests folder (e.g. 'riscv64/Image')."""
    return guests_dir() / relative
