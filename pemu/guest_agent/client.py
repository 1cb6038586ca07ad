"""The qemu-ga wire protocol, client side.

qemu-ga speaks QMP-style JSON over a byte stream that has no session: the port stays
open while host clients come and go, so a new client may find half a request of its
predecessor in the agent's parser and old replies in the pipe.  The protocol's answer,
which this client follows:

1. send a 0xFF byte: it is never valid JSON, so the agent's parser throws away what
   it had and starts afresh;
2. send ``guest-sync-delimited`` with a random id: the agent answers with a 0xFF byte
   followed by ``{"return": id}``;
3. drop everything up to that 0xFF, and every reply whose id is not ours (stale).

Each later command carries an ``id`` too (the agent echoes it, as QMP does), and a
reply with another id is skipped.  ``guest-shutdown`` gets no reply when it works.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import time
from dataclasses import dataclass

DELIMITER = 0xFF
EXEC_POLL_S = 0.1
BUSY_RETRY_S = 0.2


class GuestAgentError(Exception):
    """The agent answered with an error, or did not answer in time."""

    def __init__(self, message: str, error_class: str | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class


@dataclass
class ExecResult:
    exitcode: int | None  # None when a signal ended it
    stdout: bytes
    stderr: bytes
    signal: int | None = None

    @property
    def status(self) -> int:
        """A shell's exit status: the exit code, or 128 + the signal."""
        if self.exitcode is not None:
            return self.exitcode
        return 128 + (self.signal or 0)


def _connect(address: str, timeout: float) -> socket.socket:
    """``PATH`` of a Unix socket, or ``HOST:PORT`` (a ``tcp:`` prefix is allowed)."""
    if address.startswith("unix:"):
        address = address[5:]
    host, sep, port = address.removeprefix("tcp:").rpartition(":")
    if address.startswith("tcp:") or (sep and port.isdigit() and "/" not in address):
        return socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(address)
    return sock


class GuestAgent:
    """One connection to the agent; synchronised on connect.  Use as a context manager."""

    def __init__(self, address: str | socket.socket, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._buf = bytearray()
        self._ids = random.Random()
        if isinstance(address, socket.socket):
            self.sock = address
            self.sync()
            return
        # A chardev socket serves one client at a time and hangs up on a second one
        # (or on one that came while the last was still leaving): try again a while.
        deadline = time.monotonic() + timeout
        while True:
            self.sock = _connect(address, timeout)
            try:
                self.sync()
                return
            except (GuestAgentError, ConnectionError) as e:
                self.sock.close()
                if isinstance(e, GuestAgentError) and "closed" not in str(e) \
                        or time.monotonic() > deadline:
                    raise
                time.sleep(BUSY_RETRY_S)

    def __enter__(self) -> GuestAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # -- wire ---------------------------------------------------------------------------
    def _send(self, message: dict[str, object], flush: bool = False) -> None:
        data = json.dumps(message).encode() + b"\n"
        self.sock.sendall((bytes([DELIMITER]) if flush else b"") + data)

    def _recv_more(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise GuestAgentError("the guest agent did not answer in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise GuestAgentError("the guest agent did not answer in time") from None
        if not chunk:
            raise GuestAgentError("the connection to the guest agent closed")
        self._buf += chunk

    def _next_message(self, deadline: float) -> dict[str, object]:
        """The next reply: qemu-ga ends each with a newline (JSON strings never hold a
        raw one); a line that is not a JSON object is skipped."""
        while True:
            while b"\n" not in self._buf:
                self._recv_more(deadline)
            end = self._buf.index(b"\n")
            line = bytes(self._buf[:end]).strip()
            del self._buf[:end + 1]
            try:
                value = json.loads(line) if line else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(value, dict):
                return value

    def _new_id(self) -> int:
        return self._ids.randrange(1, 2**31)

    # -- protocol -------------------------------------------------------------------------
    def sync(self) -> int:
        """Reset the agent's parser and skip whatever an earlier client left behind."""
        sync_id = self._new_id()
        self._buf.clear()
        self._send({"execute": "guest-sync-delimited", "arguments": {"id": sync_id}},
                   flush=True)
        deadline = time.monotonic() + self.timeout
        while True:
            while DELIMITER not in self._buf:
                self._buf.clear()  # stale output before the delimiter
                self._recv_more(deadline)
            del self._buf[:self._buf.rindex(DELIMITER) + 1]
            reply = self._next_message(deadline)
            if reply.get("return") == sync_id:
                return sync_id
            # a stale sync reply of an earlier client: wait for ours

    def execute(self, command: str, arguments: dict[str, object] | None = None,
                reply: bool = True) -> object:
        """Run ``command``; its ``return`` value, or GuestAgentError for an error."""
        request_id = self._new_id()
        message: dict[str, object] = {"execute": command, "id": request_id}
        if arguments:
            message["arguments"] = arguments
        self._send(message)
        if not reply:
            return None
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._next_message(deadline)
            if answer.get("id") not in (request_id, None):
                continue  # a stale reply to someone else's request
            if "error" in answer:
                error = answer["error"]
                assert isinstance(error, dict)
                raise GuestAgentError(str(error.get("desc", error)), error.get("class"))
            if "return" in answer:
                return answer["return"]

    # -- commands -------------------------------------------------------------------------
    def ping(self) -> None:
        self.execute("guest-ping")

    def info(self) -> dict:
        return self.execute("guest-info")  # type: ignore[return-value]

    def osinfo(self) -> dict:
        return self.execute("guest-get-osinfo")  # type: ignore[return-value]

    def network_interfaces(self) -> list:
        return self.execute("guest-network-get-interfaces")  # type: ignore[return-value]

    def shutdown(self, mode: str = "powerdown") -> None:
        """Ask the guest to power off (halt, reboot); the agent sends no reply."""
        self.execute("guest-shutdown", {"mode": mode}, reply=False)

    def exec(self, argv: list[str], input: bytes | None = None,
             timeout: float | None = None) -> ExecResult:
        """Run ``argv`` in the guest (its PATH is searched) and wait for it to end."""
        args: dict[str, object] = {"path": argv[0], "arg": argv[1:], "capture-output": True}
        if input is not None:
            args["input-data"] = base64.b64encode(input).decode()
        pid = self.execute("guest-exec", args)["pid"]  # type: ignore[index]
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            status = self.execute("guest-exec-status", {"pid": pid})
            assert isinstance(status, dict)
            if status.get("exited"):
                return ExecResult(status.get("exitcode"),
                                  base64.b64decode(status.get("out-data", "")),
                                  base64.b64decode(status.get("err-data", "")),
                                  status.get("signal"))
            if time.monotonic() > deadline:
                raise GuestAgentError(f"{argv[0]} (pid {pid}) is still running")
            time.sleep(EXEC_POLL_S)

    def file_write(self, path: str, data: bytes, mode: str = "w") -> None:
        handle = self.execute("guest-file-open", {"path": path, "mode": mode})
        try:
            self.execute("guest-file-write", {"handle": handle,
                                              "buf-b64": base64.b64encode(data).decode()})
        finally:
            self.execute("guest-file-close", {"handle": handle})

    def file_read(self, path: str, chunk: int = 48 * 1024) -> bytes:
        handle = self.execute("guest-file-open", {"path": path, "mode": "r"})
        out = bytearray()
        try:
            while True:
                part = self.execute("guest-file-read", {"handle": handle, "count": chunk})
                assert isinstance(part, dict)
                out += base64.b64decode(part.get("buf-b64", ""))
                if part.get("eof") or not part.get("count"):
                    return bytes(out)
        finally:
            self.execute("guest-file-close", {"handle": handle})
