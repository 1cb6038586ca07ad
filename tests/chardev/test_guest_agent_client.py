"""pemu-ga and pemu.guest_agent against a fake agent that follows qemu-ga's protocol:
0xFF resets its parser, guest-sync-delimited answers behind a 0xFF, replies echo the
request's id; the line also carries stale output of an earlier client."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest

from pemu.guest_agent import GuestAgent, GuestAgentError
from pemu.guest_agent.main import main

STALE = b'{"return": 12345}\n{"return": {"pid": 9}}\n{"retu'  # a reader that left early


class FakeAgent:
    def __init__(self, path: str) -> None:
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(4)
        self.requests: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(STALE)
                self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        buf = bytearray()
        while chunk := conn.recv(4096):
            buf += chunk
            if b"\xff" in buf:  # the parser throws away what it had
                del buf[:buf.rindex(b"\xff") + 1]
            while b"\n" in buf:
                end = buf.index(b"\n")
                line, buf[:] = bytes(buf[:end]), buf[end + 1:]
                try:
                    request = json.loads(line)
                except json.JSONDecodeError:
                    conn.sendall(b'{"error": {"class": "GenericError", "desc": "bad"}}\n')
                    continue
                self.requests.append(request)
                reply = self._answer(request)
                if reply is not None:
                    conn.sendall(reply)

    def _answer(self, request: dict) -> bytes | None:
        name, args = request["execute"], request.get("arguments", {})
        if name == "guest-sync-delimited":
            return b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n"
        if name == "guest-shutdown":
            return None
        results = {
            "guest-sync": lambda: args["id"],
            "guest-ping": lambda: {},
            "guest-exec": lambda: {"pid": 77},
            "guest-exec-status": lambda: {
                "exited": True, "exitcode": 3,
                "out-data": base64.b64encode(b"riscv64\n").decode(),
                "err-data": base64.b64encode(b"warn\n").decode()},
            "guest-file-open": lambda: 5,
            "guest-file-write": lambda: self.files.update(
                {"w": base64.b64decode(args["buf-b64"])}) or {"count": 1, "eof": False},
            "guest-file-close": lambda: {},
        }
        body: dict[str, object]
        if name in results:
            body = {"return": results[name]()}
        else:
            body = {"error": {"class": "CommandNotFound", "desc": f"{name} not found"}}
        # a stale reply to an earlier request comes first, then ours with its id
        stale = json.dumps({"return": "stale", "id": 1}).encode() + b"\n"
        return stale + json.dumps(body | {"id": request["id"]}).encode() + b"\n"

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def agent_path(tmp_path):
    path = str(tmp_path / "qga.sock")
    fake = FakeAgent(path)
    yield path, fake
    fake.close()


def test_sync_skips_stale_output_and_matches_ids(agent_path):
    path, fake = agent_path
    with GuestAgent(path, timeout=5) as ga:
        assert fake.requests[0]["execute"] == "guest-sync-delimited"
        assert ga.execute("guest-sync", {"id": 99}) == 99
        ga.ping()
        with pytest.raises(GuestAgentError, match="guest-nope not found") as e:
            ga.execute("guest-nope")
        assert e.value.error_class == "CommandNotFound"


def test_exec_decodes_output_and_status(agent_path):
    path, fake = agent_path
    with GuestAgent(path, timeout=5) as ga:
        result = ga.exec(["uname", "-m"])
    assert (result.exitcode, result.stdout, result.stderr, result.status) == (
        3, b"riscv64\n", b"warn\n", 3)
    assert fake.requests[1]["arguments"] == {"path": "uname", "arg": ["-m"],
                                             "capture-output": True}


def test_file_write_and_shutdown_send_no_reply_wait(agent_path):
    path, fake = agent_path
    with GuestAgent(path, timeout=5) as ga:
        ga.file_write("/tmp/x", b"payload")
        ga.shutdown()  # qemu-ga answers nothing when it works: must not wait
    assert fake.files["w"] == b"payload"
    deadline = time.monotonic() + 5
    while fake.requests[-1]["execute"] != "guest-shutdown" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.requests[-1]["arguments"] == {"mode": "powerdown"}


def test_cli_exec_prints_output_and_exits_with_the_status(agent_path, capfd):
    path, _ = agent_path
    assert main([path, "exec", "--", "uname", "-m"]) == 3
    out, err = capfd.readouterr()
    assert (out, err) == ("riscv64\n", "warn\n")


def test_cli_raw_json_and_errors(agent_path, capfd):
    path, _ = agent_path
    assert main([path, '{"execute": "guest-sync", "arguments": {"id": 5}}']) == 0
    assert capfd.readouterr().out.strip() == "5"
    assert main([path, "frobnicate"]) == 1
    assert "unknown command" in capfd.readouterr().err
    assert main([str(path) + ".missing", "ping"]) == 1
