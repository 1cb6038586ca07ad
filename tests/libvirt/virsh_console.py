"""``virsh console`` driven from Python: virsh insists on a terminal for its standard
input, so it runs on a pseudo-terminal whose master the test reads and writes."""

from __future__ import annotations

import os
import pty
import select
import signal
import threading
import time

ESCAPE = b"\x1d"  # ^], virsh console's default escape: leaves the console
CONNECTED = "Escape character is"  # virsh's line once the console is attached


class VirshConsole:
    """``virsh -c URI console DOMAIN``; everything it prints is kept in ``text``."""

    def __init__(self, uri: str, domain: str) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: virsh on the pty's slave, as on a terminal
            try:
                os.execvp("virsh", ["virsh", "-c", uri, "console", domain, "--force"])
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self._output = bytearray()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="virsh-console")
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 1.0)
                if not ready:
                    continue
                data = os.read(self.fd, 4096)
            except OSError:  # EIO: virsh has gone (the slave's last holder closed it)
                return
            if not data:
                return
            with self._lock:
                self._output += data

    @property
    def text(self) -> str:
        with self._lock:
            return self._output.decode(errors="replace")

    def wait_for(self, needle: str, timeout: float, start: int = 0) -> bool:
        """Whether ``needle`` appears in the output after offset ``start`` in time."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if needle in self.text[start:]:
                return True
            if not self._reader.is_alive():
                return needle in self.text[start:]
            time.sleep(0.2)
        return False

    def send(self, text: str, timeout: float = 60) -> None:
        """``text`` typed once virsh is attached: it puts its terminal in raw mode
        then, which throws away what was typed before."""
        assert self.wait_for(CONNECTED, timeout), self.text[-2000:]
        os.write(self.fd, text.encode())

    def close(self) -> int:
        """Leave the console (^]); virsh's exit status."""
        try:
            os.write(self.fd, ESCAPE)
        except OSError:
            pass
        end = time.monotonic() + 10
        while time.monotonic() < end:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
        self._reader.join(5)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)
