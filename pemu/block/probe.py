"""Format probing by magic numbers, as qemu-img does when -f is not given."""

from __future__ import annotations

from .node import BlockNode

QCOW2_MAGIC = b"QFI\xfb"
LUKS_MAGIC = b"LUKS\xba\xbe"


def probe_format(file: BlockNode) -> str:
    head = file.read(0, 1024) if file.size else b""
    if head.startswith(QCOW2_MAGIC):
        return "qcow2"
    if head.startswith(LUKS_MAGIC):
        return "luks"
    if head.startswith(b"KDMV") or head.startswith(b"# Disk DescriptorFile"):
        return "vmdk"
    if head.startswith(b"vhdxfile"):
        return "vhdx"
    if head.startswith(b"conectix"):
        return "vpc"
    return "raw"
