"""The terminal comes back after pemu dies of a signal or exits normally."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import termios
import time

import pytest

CHILD = r"""
import sys, threading
from pemu.chardev import StdioChardev
c = StdioChardev("stdio", signal=False)
got_key = threading.Event()
c.set_receiver(lambda data: got_key.set())
print("READY", flush=True)
got_key.wait(30)
sys.exit(3)
"""


@pytest.mark.parametrize("how", ["exit", "sigterm", "sighup"])
def test_terminal_restored(how):
    master, slave = os.openpty()
    before = termios.tcgetattr(slave)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, "-c", CHILD, how], stdin=slave, stdout=slave,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        buf = b""
        deadline = time.monotonic() + 20
        while b"READY" not in buf and time.monotonic() < deadline:
            buf += os.read(master, 100)
        assert b"READY" in buf
        assert not termios.tcgetattr(slave)[3] & termios.ECHO  # raw while running
        if how == "exit":
            os.write(master, b"q")
        elif how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        elif how == "sighup":
            proc.send_signal(signal.SIGHUP)
        code = proc.wait(20)
        expected = {"exit": 3, "sigterm": -signal.SIGTERM, "sighup": -signal.SIGHUP}[how]
        assert code == expected
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)


def _blocked_signals(tid: int) -> int:
    with open(f"/proc/self/task/{tid}/status") as f:
        for line in f:
            if line.startswith("SigBlk:"):
                return int(line.split()[1], 16)
    raise AssertionError("no SigBlk line")


def test_helper_threads_leave_termination_signals_to_the_main_thread():
    """A SIGTERM that lands on the I/O thread would sit unhandled while the main
    thread sleeps in a wait: pemu's helper threads must block it, so the kernel
    delivers it to the main thread, which runs the Python handler at once."""
    from pemu.chardev import StdioChardev

    master, slave = os.openpty()
    chardev = StdioChardev("stdio", signal=False, in_fd=slave, out_fd=slave)
    try:
        import threading
        helpers = [t for t in threading.enumerate()
                   if t.name.startswith("pemu-") and t.native_id is not None]
        assert helpers, "the stdio chardev reads on a pemu helper thread"
        for t in helpers:
            mask = _blocked_signals(t.native_id)
            for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
                assert mask & (1 << (sig - 1)), f"{t.name} does not block {sig.name}"
        main_mask = _blocked_signals(threading.main_thread().native_id)
        assert not main_mask & (1 << (signal.SIGTERM - 1))
    finally:
        chardev.close()
        os.close(master)
        os.close(slave)
