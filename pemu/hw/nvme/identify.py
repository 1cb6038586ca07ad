"""Identify data structures (spec 5.15.2): controller, namespace, namespace lists."""

from __future__ import annotations

import struct
import uuid

from pemu.hw.nvme.namespace import Namespace
from pemu.hw.nvme.spec import VERSION_1_4

IDENTIFY_SIZE = 4096
ONCS_DSM = 1 << 2
ONCS_WRITE_ZEROES = 1 << 3
VWC_PRESENT_FLUSH_BROADCAST = 0x07  # a volatile cache; flush with NSID ffffffffh works
MAX_NAMESPACES = 256
ABORT_LIMIT = 3  # 0-based: 4 Abort commands at once
AER_LIMIT = 3  # 0-based: 4 Asynchronous Event Requests at once
NIDT_UUID = 3


def _text(s: str, n: int) -> bytes:
    return s.encode("ascii", "replace")[:n].ljust(n, b" ")


def identify_controller(serial: str, vendor_id: int, subsystem_vendor_id: int,
                        mdts: int, controller_id: int = 0) -> bytes:
    d = bytearray(IDENTIFY_SIZE)
    struct.pack_into("<HH", d, 0, vendor_id, subsystem_vendor_id)
    d[4:24] = _text(serial, 20)
    d[24:64] = _text("QEMU NVMe Ctrl", 40)
    d[64:72] = _text("1.0", 8)
    d[72] = 6  # recommended arbitration burst
    d[73:76] = bytes((0x00, 0x54, 0x52))  # IEEE OUI, as QEMU's
    d[77] = mdts
    struct.pack_into("<HI", d, 78, controller_id, VERSION_1_4)
    d[111] = 1  # controller type: I/O controller
    d[258] = ABORT_LIMIT
    d[259] = AER_LIMIT
    d[260] = 0x03  # one firmware slot, read-only
    struct.pack_into("<HH", d, 266, 0x157, 0x175)  # warning / critical temperature (K)
    d[512] = 0x66  # SQ entry size: 64 bytes required and maximum
    d[513] = 0x44  # CQ entry size: 16 bytes
    struct.pack_into("<I", d, 516, MAX_NAMESPACES)
    struct.pack_into("<H", d, 520, ONCS_DSM | ONCS_WRITE_ZEROES)
    d[525] = VWC_PRESENT_FLUSH_BROADCAST
    subnqn = f"nqn.2019-08.org.qemu:{serial}".encode()[:256]
    d[768:768 + len(subnqn)] = subnqn
    struct.pack_into("<H", d, 2048, 2500)  # power state 0: 25.00 W
    struct.pack_into("<II", d, 2052, 16, 4)  # entry / exit latency (us)
    return bytes(d)


def identify_namespace(ns: Namespace | None) -> bytes:
    """All zeroes for an inactive nsid (spec 5.15.2.1)."""
    d = bytearray(IDENTIFY_SIZE)
    if ns is None:
        return bytes(d)
    blocks = ns.blocks
    struct.pack_into("<QQQ", d, 0, blocks, blocks, blocks)  # size, capacity, utilization
    d[25] = 0  # one LBA format (0-based)
    d[26] = 0  # formatted with format 0
    struct.pack_into("<I", d, 128, ns.lba_shift << 16)  # LBAF0: no metadata, LBADS
    return bytes(d)


def active_namespace_list(nsids: list[int], after: int) -> bytes:
    ids = sorted(n for n in nsids if n > after)[:IDENTIFY_SIZE // 4]
    return struct.pack(f"<{len(ids)}I", *ids).ljust(IDENTIFY_SIZE, b"\0")


def namespace_descriptors(serial: str, nsid: int) -> bytes:
    """A UUID per namespace, stable for a serial (Linux refuses duplicates)."""
    ident = uuid.uuid5(uuid.NAMESPACE_OID, f"pemu-nvme:{serial}:{nsid}").bytes
    return (bytes((NIDT_UUID, len(ident), 0, 0)) + ident).ljust(IDENTIFY_SIZE, b"\0")
