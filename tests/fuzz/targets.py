"""Fuzz targets: one per parser of untrusted input.

Each target takes bytes and must either accept them or refuse them with its own
documented error; any other exception, a hang (over TIME_LIMIT_S) or an allocation
past MEMORY_LIMIT is a bug.  ``seeds()`` builds valid inputs to mutate (with focus
regions: where the metadata lies), the suite (test_fuzz_targets.py) runs each target
for a few seconds with hypothesis, and ``scripts/fuzz.py`` for as long as asked, keeping
inputs that reach new lines in a corpus directory that the suite replays.

How to add a target: a ``seeds`` function, a ``run`` function, one ``FuzzTarget`` line
in TARGETS.
"""

from __future__ import annotations

import functools
import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from tests.fuzz.mutate import Region

TIME_LIMIT_S = 5.0
MEMORY_LIMIT = 64 << 20  # peak Python allocation for one input


@dataclass(frozen=True)
class Seed:
    data: bytes
    focus: tuple[Region, ...] = ()


@dataclass(frozen=True)
class FuzzTarget:
    name: str
    seeds: Callable[[], list[Seed]]
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]  # how a refusal looks
    modules: tuple[str, ...]  # where scripts/fuzz.py measures coverage


# -- QMP JSON -------------------------------------------------------------------------
def _qmp_seeds() -> list[Seed]:
    return [Seed(b'{"execute": "qmp_capabilities"}\r\n{"execute": "query-status", "id": 1}'),
            Seed(b'{"execute": "human-monitor-command", "arguments": {"command-line": '
                 b'"info registers", "cpu-index": 0}, "id": "x\\u00e9"}'),
            Seed(b'[1, -2.5e3, true, false, null, {"a": [[{}]]}, "\\"\\\\\\n"]')]


def _qmp_run(data: bytes) -> None:
    from pemu.monitor.json_stream import JSONStreamSplitter, ParseError

    splitter = JSONStreamSplitter()
    for item in list(splitter.feed(data)) + list(splitter.feed(b"\n{}")):
        assert isinstance(item, ParseError | dict | list | str | int | float | bool) \
            or item is None, type(item)


# -- qcow2 ----------------------------------------------------------------------------
@functools.cache
def _qcow2_seeds() -> list[Seed]:
    from pemu.block import open_image
    from pemu.block.qcow2 import create_qcow2
    from pemu.block.qcow2.snapshots import create_snapshot

    seeds = []
    with tempfile.TemporaryDirectory() as d:
        for n, (cs, bits) in enumerate([(4096, 16), (512, 2)]):
            path = os.path.join(d, f"s{n}.qcow2")
            create_qcow2(path, 1 << 20, cluster_size=cs, refcount_bits=bits)
            node = open_image(path)
            node.write(0, b"A" * 9000)
            node.write_compressed(16 * cs, b"compressible " * (cs // 13) + b"x" * (cs % 13))
            create_snapshot(node, "snap", date=0)
            node.write(3 * cs, b"B" * cs)
            offset_mask = (1 << 56) - 512
            focus = [(0, 512), (node.h.l1_table_offset, node.h.l1_table_offset + 64),
                     (node.refcounts.table_offset, node.refcounts.table_offset + 64),
                     (node.h.snapshots_offset, node.h.snapshots_offset + 128)]
            focus += [(e & offset_mask, (e & offset_mask) + 128) for e in node.l1
                      if e & offset_mask]
            focus += [(o, o + 64) for o in node.refcounts.table if o]
            node.close()
            with open(path, "rb") as f:
                seeds.append(Seed(f.read(), tuple(focus)))
    return seeds


def _with_file(data: bytes, suffix: str, use: Callable[[str], None]) -> None:
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        os.write(fd, data)
        os.close(fd)
        use(path)
    finally:
        os.unlink(path)


def _qcow2_run(data: bytes) -> None:
    from pemu.block import open_image
    from pemu.block.qcow2.check import check_image

    def use(path: str) -> None:
        node = open_image(path, fmt="qcow2", read_only=True, open_backing=False)
        try:
            for offset in range(0, min(node.size, 1 << 20), 64 << 10):
                node.read(offset, 4096)
            check_image(node)
        finally:
            node.close()

    _with_file(data, ".qcow2", use)


# -- LUKS header ------------------------------------------------------------------------
@functools.cache
def _luks_seeds() -> list[Seed]:
    from pemu.block.luks import HEADER_SIZE, create_luks

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s.luks")
        create_luks(path, 64 << 10, {"key-secret": "k", "iter-time": "1"}, {"k": b"pw"})
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
    return [Seed(raw, ((0, HEADER_SIZE),))]


def _luks_run(data: bytes) -> None:
    from pemu.block.luks import parse_luks_header

    parse_luks_header(data, 1 << 30)


# -- FDT header ---------------------------------------------------------------------------
def _fdt_seeds() -> list[Seed]:
    from pemu.fdt.writer import FDT

    fdt = FDT()
    fdt.root.set_u32("#address-cells", 2)
    fdt.root.add_node("chosen").set_string("bootargs", "console=ttyS0")
    fdt.add_reservation(0x80000000, 4096)
    return [Seed(fdt.to_bytes(), ((0, 40),))]


def _fdt_run(data: bytes) -> None:
    from pemu.fdt.header import check_fdt_blob

    size = check_fdt_blob(data)
    assert 0 < size <= len(data)


# -- GDB remote protocol ---------------------------------------------------------------------
def _gdb_seeds() -> list[Seed]:
    from pemu.gdbstub.packet import frame

    cmds = [b"qSupported:multiprocess+;swbreak+", b"?", b"g", b"m80000000,40",
            b"M80000000,4:01020304", b"X80000000,2:ab", b"p20", b"P20=0000000080000000",
            b"Hg1", b"T1", b"Z0,80000000,4", b"z0,80000000,4", b"vCont?", b"vCont;s:1",
            b"qXfer:features:read:target.xml:0,100", b"qfThreadInfo", b"qRcmd,7265736574"]
    return [Seed(b"+" + b"".join(frame(c) for c in cmds)), Seed(b"$m0,1*\x22#00\x03-")]


class _FakeTarget:
    """A debug target with 64 KiB of memory at 0x80000000 and two threads."""

    BASE, SIZE = 0x80000000, 64 << 10

    def __new__(cls):
        from pemu.gdbstub.target import DebugTarget, TargetError

        class Target(DebugTarget):
            def __init__(self) -> None:
                super().__init__()
                self.mem = bytearray(cls.SIZE)

            def target_xml(self) -> dict[str, str]:
                return {"target.xml": "<target><architecture>riscv:rv64</architecture>"
                                      "</target>"}

            def threads(self) -> list[int]:
                return [1, 2]

            def read_registers(self, thread: int) -> bytes:
                return bytes(33 * 8)

            def write_registers(self, thread: int, data: bytes) -> None:
                if len(data) != 33 * 8:
                    raise TargetError("bad register block", 22)

            def read_register(self, thread: int, regno: int) -> bytes:
                if not 0 <= regno < 33:
                    raise TargetError("no such register", 22)
                return bytes(8)

            def write_register(self, thread: int, regno: int, value: bytes) -> None:
                self.read_register(thread, regno)

            def _span(self, addr: int, length: int) -> int:
                # the stub must bound what it asks for: a packet cannot ask for gigabytes
                assert length <= 1 << 20, f"stub asked for {length} bytes"
                if not (cls.BASE <= addr and addr + length <= cls.BASE + cls.SIZE):
                    raise TargetError("outside memory", 14)
                return addr - cls.BASE

            def read_memory(self, thread: int, addr: int, length: int) -> bytes:
                at = self._span(addr, length)
                return bytes(self.mem[at:at + length])

            def write_memory(self, thread: int, addr: int, data: bytes) -> None:
                at = self._span(addr, len(data))
                self.mem[at:at + len(data)] = data

            def insert_point(self, kind: int, addr: int, length: int) -> bool:
                return kind in (0, 1)

            def remove_point(self, kind: int, addr: int, length: int) -> bool:
                return kind in (0, 1)

            def remove_all_points(self) -> None:
                pass

            def resume(self, step_thread: int | None) -> None:
                pass

            def interrupt(self) -> None:
                pass

            def attached(self) -> None:
                pass

            def detach(self) -> None:
                pass

            def kill(self) -> None:
                pass

        return Target()


def _gdb_run(data: bytes) -> None:
    from pemu.gdbstub import packet as pk
    from pemu.gdbstub.protocol import GdbSession

    sent: list[bytes] = []
    session = GdbSession(_FakeTarget(), sent.append)
    # the reader first, then every complete packet straight to dispatch, so that a stub
    # bug is an exception here rather than an "E01" the session would hide
    for event in pk.PacketReader().feed(data):
        if isinstance(event, pk.Packet):
            payload = event.payload
            session.dispatch(pk.expand_rle(payload) if payload[:1] != b"X" else payload)
    assert all(len(s) <= 2 * pk.MAX_PACKET for s in sent)


# -- migration: device state sections --------------------------------------------------------
def _plic():
    from pemu.hw.intc import plic

    return plic.PLIC(num_harts=2)


def _migration_seeds() -> list[Seed]:
    from pemu.migration import save_device

    ctl = _plic()
    ctl.input(2).raise_()
    return [Seed(save_device(ctl))]


def _migration_run(data: bytes) -> None:
    from pemu.migration import load_device, save_device

    ctl = _plic()
    before = save_device(ctl)
    try:
        load_device(ctl, data)
    except Exception:
        assert save_device(ctl) == before, "a refused state changed the device"
        raise
    assert struct.unpack_from(">B", save_device(ctl), 0) is not None


def _errors(*names: str) -> tuple[type[BaseException], ...]:
    import importlib
    out = []
    for name in names:
        module, _, attr = name.rpartition(".")
        out.append(getattr(importlib.import_module(module), attr))
    return tuple(out)


TARGETS: dict[str, FuzzTarget] = {t.name: t for t in [
    FuzzTarget("qmp-json", _qmp_seeds, _qmp_run, (), ("pemu/monitor/json_stream.py",)),
    FuzzTarget("qcow2", _qcow2_seeds, _qcow2_run, _errors("pemu.block.errors.BlockError"),
               ("pemu/block/qcow2/",)),
    FuzzTarget("luks-header", _luks_seeds, _luks_run,
               _errors("pemu.block.errors.BlockError"), ("pemu/block/luks.py",)),
    FuzzTarget("fdt-header", _fdt_seeds, _fdt_run, _errors("pemu.fdt.header.FdtHeaderError"),
               ("pemu/fdt/header.py",)),
    FuzzTarget("gdb-packets", _gdb_seeds, _gdb_run,
               _errors("pemu.gdbstub.target.TargetError") + (ValueError, IndexError, KeyError),
               ("pemu/gdbstub/packet.py", "pemu/gdbstub/protocol.py")),
    FuzzTarget("migration-section", _migration_seeds, _migration_run,
               _errors("pemu.migration.errors.MigrationError"), ("pemu/migration/",)),
]}
