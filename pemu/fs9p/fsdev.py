"""``-fsdev local,id=,path=,security_model=`` and ``-virtfs``, with QEMU's errors.

``-fsdev`` only declares a backend; ``-device virtio-9p-*,fsdev=ID,mount_tag=TAG``
opens it.  ``-virtfs local,path=,mount_tag=,security_model=[,id=]`` is both at once:
an fsdev named by ``id`` (default: the tag) and a ``virtio-9p-pci`` device on it, as
QEMU expands it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pemu.fs9p.local import SECURITY_MODELS
from pemu.qemuopts.keyval import OptionError, parse_bool

DRIVERS = ("local",)  # QEMU's proxy (deprecated) and synth (tests only) are not here
LOCAL_OPTIONS = ("fsdriver", "id", "readonly", "path", "security_model", "writeout",
                 "fmode", "dmode", "multidevs")
VIRTFS_OPTIONS = (*LOCAL_OPTIONS, "mount_tag")
SECURITY_MODEL_HINT = "(valid options are: security_model=[passthrough|mapped-xattr|none])"


@dataclass(frozen=True)
class FsdevSpec:
    id: str
    path: str
    security_model: str
    readonly: bool = False
    fmode: int = 0o600
    dmode: int = 0o700
    writeout_immediate: bool = False


def parse_fsdev(opts: dict[str, str]) -> FsdevSpec:
    """Check one -fsdev; OptionError with QEMU's message."""
    fsdev_id = opts.get("id")
    if not fsdev_id:
        raise OptionError("fsdev: No id specified")
    driver = opts.get("fsdriver")
    if not driver:
        raise OptionError("fsdev: No fsdriver specified")
    if driver not in DRIVERS:
        raise OptionError(f"fsdev: fsdriver {driver} not found")
    for key in opts:
        if key not in LOCAL_OPTIONS:
            raise OptionError(f"'{key}' is invalid for fsdriver '{driver}'")
    model = opts.get("security_model")
    if not model:
        raise OptionError(f"security_model property not set {SECURITY_MODEL_HINT}")
    if model not in SECURITY_MODELS:
        raise OptionError(f"invalid security_model property '{model}' "
                          f"{SECURITY_MODEL_HINT}")
    if opts.get("multidevs", "warn") != "warn":
        raise OptionError(f"multidevs={opts['multidevs']}: not implemented in pemu (inode "
                          "numbers pass through as with multidevs=warn)")
    writeout = opts.get("writeout")
    if writeout not in (None, "immediate"):
        raise OptionError(f"writeout={writeout}: the only value is 'immediate'")
    path = opts.get("path")
    if not path:
        raise OptionError("path property not set")
    mapped = model in ("mapped-xattr", "mapped")
    modes = {}
    for key, default in (("fmode", 0o600), ("dmode", 0o700)):
        text = opts.get(key)
        if text is None:
            modes[key] = default
            continue
        if not mapped:
            raise OptionError(f"{key} is only valid for mapped security modes")
        try:
            modes[key] = int(text, 8) & 0o777
        except ValueError:
            raise OptionError(f"{key}={text}: not an octal mode") from None
    return FsdevSpec(fsdev_id, path, model,
                     parse_bool(opts.get("readonly", "off"), "readonly"),
                     modes["fmode"], modes["dmode"], writeout == "immediate")


def expand_virtfs(opts: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """-virtfs as QEMU reads it: (the -fsdev options, the -device options)."""
    if not opts.get("fsdriver") or not opts.get("mount_tag"):
        raise OptionError("Usage: -virtfs fsdriver,mount_tag=tag")
    for key in opts:
        if key not in VIRTFS_OPTIONS:
            raise OptionError(f"Invalid parameter '{key}'")
    fsdev = {k: v for k, v in opts.items() if k != "mount_tag"}
    fsdev["id"] = opts.get("id") or opts["mount_tag"]
    device = {"driver": "virtio-9p-pci", "fsdev": fsdev["id"], "mount_tag": opts["mount_tag"]}
    return fsdev, device


def find_fsdev(fsdevs: list[dict[str, str]], fsdev_id: str | None) -> FsdevSpec | None:
    for opts in fsdevs:
        if opts.get("id") == fsdev_id:
            return parse_fsdev(opts)
    return None
