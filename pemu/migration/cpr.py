"""The cpr channel of a cpr-transfer live update: guest RAM handed over, not copied,
and the disk images and TAP interfaces with it.

The old pemu connects to the new one's UNIX socket and sends one message: u32 length +
a JSON header naming the RAM blocks whose memory it hands over and the backends whose
descriptors it hands over (pemu/fdpass/handover.py), with the descriptors attached
by SCM_RIGHTS in the same order: the RAM blocks' first, then the backends'.

The new pemu reads the message before it builds its machine (``accept_early``, from
the CLI), so its backends take the descriptors instead of opening by name.  Once the
machine exists, ``receive`` checks every RAM descriptor (a memory object, large
enough, for a block it has of that size), keeps them for the main stream's S records
(machine_state.MachineLoader), and answers one line: ``ok`` or ``error: WHY``.  The
old pemu stops its guest only after the ``ok``: until then it runs on, and a refusal
leaves it running.
"""

from __future__ import annotations

import json
import os
import socket
import struct

from pemu.fdpass import handover
from pemu.fdpass.handover import Handover
from pemu.memory.address_space import RAMBlock
from pemu.memory.shared_ram import BackingError, RamBacking, adopt_fd

MAGIC = "pemu-cpr"
VERSION = 2  # 2: backend descriptors after the RAM's
READS = (1, 2)
MAX_HEADER = 64 << 10
MAX_FDS = 64
TIMEOUT = 60.0


class CprError(Exception):
    """The cpr channel failed; the message is for the user."""


def _unix_path(uri: str) -> str:
    if not uri.startswith("unix:") or len(uri) <= 5:
        raise CprError(f"cpr channel {uri}: must be unix:PATH")
    return uri[len("unix:"):]


def send_ram(uri: str, blocks: list[RAMBlock], handed: list[Handover] | None = None
             ) -> None:
    """The source's side: hand the blocks' shared memory (and the backends'
    descriptors) over and wait for the new pemu to accept them."""
    handed = handed or []
    header = json.dumps({"magic": MAGIC, "version": VERSION,
                         "blocks": [{"name": b.name, "size": b.size} for b in blocks],
                         "fds": [h.describe() for h in handed]}).encode()
    fds = [b.backing.fd for b in blocks if b.backing is not None]
    fds += [fd for h in handed for fd in h.fds]
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect(_unix_path(uri))
            socket.send_fds(sock, [struct.pack("<I", len(header)) + header], fds)
            reply = sock.makefile("rb").readline(4096).decode(errors="replace").strip()
        except OSError as e:
            raise CprError(f"cpr channel {uri}: {e.strerror or e}") from None
    if reply != "ok":
        raise CprError(f"cpr channel: the new pemu refused the hand-over: "
                       f"{reply.removeprefix('error: ') or 'it closed the channel'}")


class CprListener:
    """The destination's side: ``listen()`` binds at start-up; ``accept_early()`` (the
    CLI, before the machine is built) takes the one connection and its message and
    hands the backends' descriptors to pemu/fdpass/handover.py; ``receive(blocks)``
    (after, or instead) checks the RAM's, answers, and returns the backings by block
    name."""

    def __init__(self, uri: str) -> None:
        self.path = _unix_path(uri)
        self._sock: socket.socket | None = None
        # accept_early's connection, RAM header and RAM descriptors, until receive
        self._early: tuple[socket.socket, dict, list[int]] | None = None

    def listen(self) -> None:
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
            self._sock = socket.socket(socket.AF_UNIX)
            self._sock.bind(self.path)
            self._sock.listen(1)
        except OSError as e:
            raise CprError(f"cpr channel unix:{self.path}: {e.strerror or e}") from None

    def close(self, why: str = "the new pemu did not start") -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._early is not None:  # the old pemu waits for the answer
            conn, _, fds = self._early
            self._early = None
            _refuse(conn, fds, why)

    def accept_early(self) -> None:
        """Wait for the old pemu (no time limit: it connects when told to migrate)
        and read its message; the backends' descriptors go to pemu/fdpass/handover.py."""
        assert self._sock is not None
        conn, _ = self._sock.accept()
        self._sock.close()
        self._sock = None
        self._early = (conn, *self._read(conn))

    def receive(self, blocks: list[RAMBlock]) -> dict[str, RamBacking]:
        if self._early is None:
            assert self._sock is not None
            conn, _ = self._sock.accept()
            self.close()
            header, fds = self._read(conn)
        else:
            conn, header, fds = self._early
            self._early = None
        with conn:
            try:
                out = _check(header, fds, {b.name: b for b in blocks})
            except CprError as e:
                _refuse(conn, fds, str(e))
                raise
            conn.sendall(b"ok\n")
            return out

    @staticmethod
    def _read(conn: socket.socket) -> tuple[dict, list[int]]:
        """The header and the RAM's descriptors; the rest adopted by pemu/fdpass/handover.py."""
        fds: list[int] = []
        try:
            conn.settimeout(TIMEOUT)
            raw, fds = _read_message(conn)
            header, handed = _parse(raw, fds)
        except (CprError, OSError) as e:
            why = str(e) if isinstance(e, CprError) else f"cpr channel: {e}"
            _refuse(conn, fds, why)
            raise CprError(why) from None
        handover.adopt(handed)
        return header, fds[:len(header["blocks"])]


def _refuse(conn: socket.socket, fds: list[int], why: str) -> None:
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(f"error: {why}\n".encode())
    except OSError:
        pass
    conn.close()


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


def _parse(raw: bytes, fds: list[int]) -> tuple[dict, list[Handover]]:
    """The checked header, and the backends' descriptors (those after the RAM's)."""
    try:
        header = json.loads(raw)
        names = [(b["name"], int(b["size"])) for b in header["blocks"]]
        backends = [(f["kind"], str(f["key"]), int(f["count"]))
                    for f in header.get("fds", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CprError("cpr channel: not a pemu cpr header") from None
    if header.get("magic") != MAGIC or header.get("version") not in READS:
        raise CprError(f"cpr channel: version {header.get('version')!r}, this pemu "
                       f"reads {', '.join(map(str, READS))}")
    wanted = len(names) + sum(count for _, _, count in backends)
    if wanted != len(fds) or any(count < 1 or kind not in handover.KINDS
                                 for kind, _, count in backends):
        raise CprError(f"cpr channel: {len(names)} RAM blocks and {len(backends)} "
                       f"backends but {len(fds)} descriptors")
    header["blocks"] = names
    handed, at = [], len(names)
    for kind, key, count in backends:
        handed.append(Handover(kind, key, fds[at:at + count]))
        at += count
    return header, handed


def _check(header: dict, fds: list[int], ours: dict[str, RAMBlock]
           ) -> dict[str, RamBacking]:
    names = header["blocks"]
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
