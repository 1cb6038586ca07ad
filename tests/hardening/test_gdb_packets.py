"""A GDB client that sends an endless packet (no ``#``) cannot hurt the stub: the packet
is dropped once it passes PacketSize, the emulator runs on, and the next good packet
on the same connection is answered."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from pemu.gdbstub.packet import MAX_PACKET, OVERSIZED, Packet, PacketReader
from tests.gdbstub.conftest import ROOT, _listening, free_port

HUGE = b"$" + b"A" * (2 << 20)  # 2 MiB, never terminated


def test_reader_drops_oversized_packet_and_recovers():
    reader = PacketReader()
    events = list(reader.feed(HUGE))
    assert events == [OVERSIZED]  # reported once, not once per byte
    assert len(reader._buf) <= MAX_PACKET
    events = list(reader.feed(b"$?#3f"))
    assert events == [Packet(b"?")]


def _recv_until(conn: socket.socket, marker: bytes, timeout: float = 30) -> bytes:
    conn.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_system_stub_survives_2mib_packet(baremetal):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pemu.cli.system_riscv64", "-M", "virt", "-m", "64M",
         "-bios", "none", "-kernel", str(baremetal), "-serial", "null", "-display", "none",
         "-S", "-gdb", f"tcp::{port}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT))
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the gdb stub never listened"
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(HUGE)
            conn.sendall(b"$?#3f")
            reply = _recv_until(conn, b"#")
            assert b"$T05" in reply or b"$S05" in reply, reply
        assert proc.poll() is None
    finally:
        proc.kill()
        _, err = proc.communicate()
    assert b"Traceback" not in err, err.decode()
