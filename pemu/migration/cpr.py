"""The cpr channel of a cpr-transfer live update: guest RAM handed over, not copied.

The old pemu connects to the new one's UNIX socket and sends one message: u32 length +
a JSON header naming the RAM blocks whose memory it hands over, with their memfd (or
file) descriptors attached by SCM_RIGHTS in the same order.  The new pemu checks every
descriptor (a memory object, large enough, for a block it has of that size), keeps
them for the main stream's S records (machine_state.MachineLoader), and answers one
line: ``ok`` or ``error: WHY``.  The old pemu stops its guest only after the ``ok``:
until then it runs on, and a refusal leaves it running.

Only RAM travels here.  Disk images and sockets are reopened by the new process
from its command line (the old one flushed them at the switch-over).
"""

from __future__ import annotations

import json
import os
import socket
import struct

from pemu.memory.address_space import RAMBlock
from pemu.memory.shared_ram import BackingError, RamBacking, adopt_fd

MAGIC = "pemu-cpr"
VERSION = 1
MAX_HEADER = 64 << 10
MAX_FDS = 64
TIMEOUT = 60.0


class CprError(Exception):
    """The cpr channel failed; the message is for the user."""


def _unix_path(uri: str) -> str:
    if not uri.startswith("unix:") or len(uri) <= 5:
        raise CprError(f"cpr channel {uri}: must be unix:PATH")
    return uri[len("unix:"):]


def send_ram(uri: str, blocks: list[RAMBlock]) -> None:
    """The source's side: hand the blocks' shared memory over and wait for the new
    pemu to accept it."""
    header = json.dumps({"magic": MAGIC, "version": VERSION,
                         "blocks": [{"name": b.name, "size": b.size} for b in blocks]}
                        ).encode()
    fds = [b.backing.fd for b in blocks if b.backing is not None]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(_unix_path(uri))
            socket.send_fds(sock, [struct.pack("<I", len(header)) + header], fds)
            reply = sock.makefile("rb").readline(4096).decode(errors="replace").strip()
        except OSError as e:
            raise CprError(f"cpr channel {uri}: {e.strerror or e}") from None
    if reply != "ok":
        raise CprError(f"cpr channel: the new pemu refused the RAM: "
                       f"{reply.removeprefix('error: ') or 'it closed the channel'}")


class CprListener:
    """The destination's side: ``listen()`` binds at start-up, ``receive(blocks)``
    takes the one connection and returns the checked backings by block name."""

    def __init__(self, uri: str) -> None:
        self.path = _unix_path(uri)
        self._sock: socket.socket | None = None

    def listen(self) -> None:
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
            self._sock = socket.socket(socket.AF_UNIX)
            self._sock.bind(self.path)
            self._sock.listen(1)
        except OSError as e:
            raise CprError(f"cpr channel unix:{self.path}: {e.strerror or e}") from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def receive(self, blocks: list[RAMBlock]) -> dict[str, RamBacking]:
        assert self._sock is not None
        conn, _ = self._sock.accept()
        self.close()
        fds: list[int] = []
        with conn:
            try:
                conn.settimeout(TIMEOUT)
                header, fds = _read_message(conn)
                out = _check(header, fds, {b.name: b for b in blocks})
            except (CprError, OSError) as e:
                for fd in fds:
                    os.close(fd)
                why = str(e) if isinstance(e, CprError) else f"cpr channel: {e}"
                try:
                    conn.sendall(f"error: {why}\n".encode())
                except OSError:
                    pass
                raise CprError(why) from None
            conn.sendall(b"ok\n")
            return out


def _read_message(conn: socket.socket) -> tuple[bytes, list[int]]:
    data, fds, flags, _ = socket.recv_fds(conn, MAX_HEADER + 4, MAX_FDS)
    if flags & socket.MSG_CTRUNC:
        for fd in fds:
            os.close(fd)
        raise CprError("cpr channel: too many descriptors")
    try:
        while len(data) < 4:
            chunk = conn.recv(4 - len(data))
            if not chunk:
                raise CprError("cpr channel: closed before the RAM descriptors came")
            data += chunk
        (length,) = struct.unpack("<I", data[:4])
        if length > MAX_HEADER:
            raise CprError("cpr channel: header too long (not a pemu cpr channel)")
        while len(data) < 4 + length:
            chunk = conn.recv(4 + length - len(data))
            if not chunk:
                raise CprError("cpr channel: closed in the middle of the header")
            data += chunk
    except (CprError, OSError):
        for fd in fds:
            os.close(fd)
        raise
    return data[4:4 + length], fds


def _check(raw: bytes, fds: list[int], ours: dict[str, RAMBlock]) -> dict[str, RamBacking]:
    try:
        header = json.loads(raw)
        names = [(b["name"], int(b["size"])) for b in header["blocks"]]
    except (ValueError, KeyError, TypeError):
        raise CprError("cpr channel: not a pemu cpr header") from None
    if header.get("magic") != MAGIC or header.get("version") != VERSION:
        raise CprError(f"cpr channel: version {header.get('version')!r}, this pemu "
                       f"reads {VERSION}")
    if len(names) != len(fds):
        raise CprError(f"cpr channel: {len(names)} RAM blocks but {len(fds)} descriptors")
    out: dict[str, RamBacking] = {}
    for (name, size), fd in zip(names, fds, strict=True):
        block = ours.get(name)
        if block is None or block.size != size:
            raise CprError(f"cpr channel: RAM block {name!r} of {size} bytes: this "
                           "machine has no such block")
        try:
            out[name] = adopt_fd(fd, size, f"cpr channel: RAM block {name!r}")
        except BackingError as e:
            raise CprError(str(e)) from None
    return out


__all__ = ["CprError", "CprListener", "send_ram"]
