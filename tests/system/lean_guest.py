"""The lean riscv64 guest (../shared/guests/riscv64) as a network peer in tests: boot
it to its interactive shell on a pty, under pemu or under QEMU, and run commands.

``run(cmd, marker)`` appends ``&& echo MARKER-$((6*7))``-style proof so that the echo
of the typed line never satisfies the wait: only the shell's arithmetic output does.
"""

from __future__ import annotations

import functools
import http.server
import itertools
import os
import pty
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.system.conftest import GUESTS, OPENSBI, ROOT, pemu_cmd, pemu_env
from tests.system.test_virt_board import _read_until

BOOT_TIMEOUT = 300
PROMPT = b"pemu-guest:"
_serial = itertools.count(1)


def need_lean_guest() -> None:
    if not (GUESTS / "Image").exists() or not OPENSBI.exists():
        pytest.skip("needs the shared riscv64 guest and Debian's opensbi")


def need_qemu() -> str:
    qemu = shutil.which("qemu-system-riscv64")
    if qemu is None:
        pytest.skip("qemu-system-riscv64 is not installed (Debian qemu-system-misc)")
    return qemu


class LeanGuest:
    """One running guest; ``net_args`` are its -netdev/-device (or -nic) options."""

    def __init__(self, net_args: list[str], qemu: bool = False, prefix: list[str] = (),
                 initrd: Path | None = None):
        """``initrd``: instead of the shared initramfs (e.g. it with an overlay)."""
        initrd = initrd or GUESTS / "initramfs.cpio.gz"
        common = ["-M", "virt", "-m", "256M", "-nographic", "-kernel", str(GUESTS / "Image"),
                  "-initrd", str(initrd), "-append", "console=ttyS0", *net_args]
        cmd = [need_qemu(), "-bios", "default", *common] if qemu else pemu_cmd(*common)
        self.log = bytearray()
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([*prefix, *cmd], stdin=slave, stdout=slave,
                                     stderr=slave, env=pemu_env(), cwd=ROOT,
                                     start_new_session=True)
        os.close(slave)

    def wait_prompt(self) -> None:
        if not _read_until(self.master, PROMPT, BOOT_TIMEOUT, self.log):
            self.fail("no shell prompt")

    def run(self, command: str, timeout: float = 120) -> str:
        """Run ``command``; its output once it succeeded (a failure fails the test)."""
        n = next(_serial)
        marker = f"PEMU-DONE-{n}-"
        start = len(self.log)
        os.write(self.master, f"{command} && echo {marker}$(({n}*7))\r".encode())
        if not _read_until(self.master, f"{marker}{n * 7}".encode(), timeout, self.log):
            self.fail(f"'{command}' did not succeed")
        return bytes(self.log[start:]).decode(errors="replace")

    def fail(self, why: str) -> None:
        pytest.fail(f"{why}: {bytes(self.log[-3000:]).decode(errors='replace')}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def ping_until_answered(guest: LeanGuest, address: str, tries: int = 30) -> str:
    """Ping until the first answer (the peer may still be booting), then 3 more."""
    return guest.run(f"for i in $(seq {tries}); do ping -c 1 -W 1 {address} >/dev/null "
                     f"&& break; done; ping -c 3 -W 2 {address}", timeout=tries * 2 + 60)


# busybox udhcpc only reports the lease; this script applies it
UDHCPC_SCRIPT = ('printf \'#!/bin/sh\\n[ "$1" = bound ] && ifconfig $interface $ip '
                 'netmask $subnet up && route add default gw $router\\nexit 0\\n\' '
                 '> /tmp/dhcp.sh && chmod +x /tmp/dhcp.sh')


def serve(folder) -> tuple[http.server.ThreadingHTTPServer, int]:
    """An HTTP server for ``folder`` on 127.0.0.1 (slirp and passt show it the guest as
    10.0.2.2), on a free port, in a daemon thread."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


