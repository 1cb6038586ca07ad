"""pemu-live-update: move a running guest to a new pemu process (for example a newer
pemu) on the same host, without copying its RAM - QEMU's cpr-transfer procedure as
one command.

  pemu-live-update --qmp /run/vm.qmp -- pemu-system-riscv64 SAME COMMAND LINE...

The guest's RAM must be in a memfd (``-object memory-backend-memfd,id=ram0,size=1G
-machine memory-backend=ram0``) in the old and the new command line.  Steps:

  1. connect to the old pemu's QMP socket (before the new one may take its path);
  2. start the new pemu: the command line plus ``-incoming unix:MAIN -incoming
     '{"channel-type":"cpr",...}'`` (sockets in a private temporary directory); it
     runs detached in its own session, its output goes to ``--log`` (or nowhere);
  3. old pemu: ``migrate-set-parameters mode=cpr-transfer``, ``migrate`` with both
     channels: the RAM's memfd, the disk images' and the TAP queues' descriptors go
     over the cpr channel (the new pemu builds its machine on them), the guest stops,
     disks are flushed, devices and CPUs go over the main channel, the new pemu runs
     the guest;
  4. wait for ``completed``, then ``quit`` the old pemu (it stays in postmigrate until
     then, as QEMU's does).

On failure the new process is killed and the old one keeps running the guest; the
exit status is 1.  ``--keep-old`` leaves the old process in postmigrate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PROG = "pemu-live-update"


class UpdateError(Exception):
    pass


class QMPClient:
    """A minimal synchronous QMP client (events are skipped)."""

    def __init__(self, path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            raise UpdateError(f"--qmp {path}: {e.strerror or e}") from None
        self.file = self.sock.makefile("rwb")
        self._read()  # the greeting
        self.cmd("qmp_capabilities")

    def _read(self) -> dict:
        line = self.file.readline()
        if not line:
            raise UpdateError("the old pemu closed its QMP connection")
        return json.loads(line)

    def cmd(self, name: str, **args: object) -> object:
        self.file.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise UpdateError(f"{name}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def wait_closed(self, timeout: float) -> bool:
        """Whether the peer closed the connection (its process exited) in time."""
        self.sock.settimeout(timeout)
        try:
            while self.file.readline():
                pass
        except OSError:
            return False
        return True

    def close(self) -> None:
        for c in (self.file, self.sock):
            try:
                c.close()
            except OSError:
                pass


def _channel(kind: str, path: str) -> dict:
    return {"channel-type": kind,
            "addr": {"transport": "socket", "type": "unix", "path": path}}


def _wait_for(path: str, proc: subprocess.Popen, deadline: float) -> None:
    """The new pemu listens once the socket exists (it binds before anything else)."""
    while not os.path.exists(path):
        if proc.poll() not in (None, 0):  # 0: -daemonize's parent returned
            raise UpdateError(f"the new pemu exited with status {proc.returncode} "
                              "before listening (see --log)")
        if time.monotonic() > deadline:
            raise UpdateError("the new pemu did not start listening in time")
        time.sleep(0.02)


def update(qmp_path: str, command: list[str], timeout: float, log: str | None,
           keep_old: bool) -> dict[str, object]:
    old = QMPClient(qmp_path, timeout)
    tmp = tempfile.mkdtemp(prefix="pemu-live-update-")
    main, cpr = os.path.join(tmp, "main.sock"), os.path.join(tmp, "cpr.sock")
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    started = time.monotonic()
    proc = None
    try:
        if old.cmd("query-status").get("status") not in ("running", "paused"):
            raise UpdateError("the old pemu is not running a guest")
        proc = subprocess.Popen(
            [*command, "-incoming", f"unix:{main}",
             "-incoming", json.dumps(_channel("cpr", cpr))],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + timeout
        # the new pemu waits on the cpr channel before it builds its machine (and binds
        # the main channel): the migration starts as soon as the cpr socket exists
        _wait_for(cpr, proc, deadline)
        old.cmd("migrate-set-parameters", mode="cpr-transfer")
        old.cmd("migrate", channels=[_channel("main", main), _channel("cpr", cpr)])
        while True:
            info = old.cmd("query-migrate")
            if info.get("status") == "completed":
                break
            if info.get("status") in ("failed", "cancelled"):
                raise UpdateError(f"migration {info['status']}: "
                                  f"{info.get('error-desc', '')}")
            if time.monotonic() > deadline:
                raise UpdateError("the migration did not complete in time")
            time.sleep(0.01)
        result: dict[str, object] = {
            "pid": proc.pid, "downtime-ms": info.get("downtime"),
            "total-ms": int((time.monotonic() - started) * 1000)}
        if not keep_old:
            try:
                old.cmd("quit")
            except (UpdateError, OSError):
                pass  # it closed the connection while quitting
            result["old-exited"] = old.wait_closed(timeout)
        return result
    except BaseException:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: nothing else
            proc.wait()
        raise
    finally:
        old.close()
        if out is not subprocess.DEVNULL:
            out.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Move a running guest to a new pemu process without "
        "copying its RAM (cpr-transfer). The guest's RAM must be in "
        "-object memory-backend-memfd,...  -machine memory-backend=...",
        usage=f"{PROG} --qmp SOCKET [options] -- NEW PEMU COMMAND LINE...")
    parser.add_argument("--qmp", required=True, help="the running pemu's QMP UNIX socket")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds for the new pemu to start and the switch-over")
    parser.add_argument("--log", help="file for the new pemu's output (default: none)")
    parser.add_argument("--keep-old", action="store_true",
                        help="leave the old pemu in postmigrate instead of quitting it")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("the new pemu's command line is missing (after --)")
    try:
        result = update(args.qmp, command, args.timeout, args.log, args.keep_old)
    except UpdateError as e:
        print(f"{PROG}: {e}; the old pemu keeps running the guest", file=sys.stderr)
        return 1
    print(f"{PROG}: the guest runs in pemu process {result['pid']} (switch-over "
          f"downtime {result['downtime-ms']} ms, {result['total-ms']} ms in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
