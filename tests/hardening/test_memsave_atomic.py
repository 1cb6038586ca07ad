"""A pmemsave that fails half way leaves no partial file: neither a new one nor a
truncated old one."""

from __future__ import annotations

import json

import pytest

from pemu.monitor.commands import MEMSAVE_CHUNK
from pemu.monitor.errors import QMPError
from pemu.monitor.save_file import save_atomically
from tests.monitor.tcg_machine import TCGLoopMachine
from tests.monitor.test_qmp_fuzz import _session


def _pmemsave(machine, path, size: int) -> dict:
    session = _session(machine)
    cap = session.capture  # type: ignore[attr-defined]
    request = {"execute": "pmemsave", "id": "x",
               "arguments": {"val": 0, "size": size, "filename": str(path)}}
    session.feed(json.dumps(request).encode())
    with cap.cond:
        cap.cond.wait_for(lambda: b'"x"' in cap.data, timeout=30)
    session.close()
    return cap.messages()[-1]


def test_pmemsave_failing_half_way_leaves_nothing(tmp_path):
    machine = TCGLoopMachine(1)
    calls = []

    def read_memory(addr, size, physical=True, cpu_index=0):
        calls.append(addr)
        if len(calls) == 2:
            raise QMPError(f"Invalid addr 0x{addr:x}/size {size} specified")
        return bytes(size)

    machine.read_memory = read_memory
    try:
        fresh, old = tmp_path / "fresh.bin", tmp_path / "old.bin"
        old.write_bytes(b"previous dump")
        for path in (fresh, old):
            calls.clear()
            reply = _pmemsave(machine, path, 3 * MEMSAVE_CHUNK)
            assert "error" in reply and len(calls) == 2
        assert not fresh.exists()
        assert old.read_bytes() == b"previous dump"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]  # no temp left
        calls.clear()
        machine.read_memory = lambda addr, size, *a: bytes([7]) * size
        assert "return" in _pmemsave(machine, fresh, MEMSAVE_CHUNK + 5)
        assert fresh.read_bytes() == bytes([7]) * (MEMSAVE_CHUNK + 5)
    finally:
        machine.shutdown_threads()


def test_special_files_are_written_in_place(tmp_path):
    save_atomically("/dev/null", [b"abc"])  # not replaced by a regular file
    with pytest.raises(OSError):
        save_atomically(str(tmp_path / "no" / "such" / "dir"), [b"x"])
