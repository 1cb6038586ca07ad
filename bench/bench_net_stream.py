"""Network throughput on the lean guest: one TCP stream each way, pemu and QEMU in one run,
through ``-netdev user`` (hostfwd, libslirp) or ``-netdev tap`` (vnet_hdr=on).

    python3 bench/bench_net_stream.py [--link user|tap] [--mb 16] [--skip-qemu]
                                      [--pemu-root DIR]

The lean guest (../shared/guests/riscv64, busybox) boots in seconds, which makes this the
quick companion of bench_net.py (iperf3 in the Debian guest).  Host -> guest: the guest
runs ``nc -l -p 5000 >/dev/null`` and the host sends MB megabytes, then waits for the
guest to close (everything arrived).  Guest -> host: the guest pipes ``dd`` from
/dev/zero into ``nc`` towards a host listener, which counts bytes until EOF.

``--link tap`` makes a network namespace (``unshare -n``: needs root) holding a TAP
interface at 192.168.77.1, the emulator attached to it with vnet_hdr=on and the guest at
192.168.77.2; the host's end of each stream runs in that namespace (``nsenter``).
``--pemu-root`` runs pemu from another checkout (a before/after comparison).
Both ends of each stream are busybox/Python: the figures compare emulators with each
other, not with a NIC.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemu_bytecode import compile_pemu  # noqa: E402

from bench.bench_net import free_port  # noqa: E402
from tests.system import conftest, lean_guest  # noqa: E402
from tests.system.lean_guest import LeanGuest  # noqa: E402
from tests.system.test_net_tap import GUEST, HOST, namespace_setup  # noqa: E402

GUEST_PORT = 5000
CHUNK = 65536

# the host's ends of the streams, as scripts (they may have to run in a namespace)
SENDER = """import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.settimeout(900)
buf, n = b"x" * 65536, int(sys.argv[3])
start = time.monotonic()
for _ in range(n):
    s.sendall(buf)
s.shutdown(socket.SHUT_WR)
s.recv(1)  # the guest closes once it has read everything
print(n * len(buf), time.monotonic() - start)
"""
RECEIVER = """import socket, sys, time
listener = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
conn, _ = listener.accept()
start, got = time.monotonic(), 0
while data := conn.recv(262144):
    got += len(data)
print(got, time.monotonic() - start)
"""


class Link:
    """Where the host's end of a stream runs and which addresses each side uses."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.fwd_port = free_port()

    def net_args(self) -> list[str]:
        if self.kind == "tap":
            return ["-netdev", "tap,id=n0,ifname=ptap0,script=no,downscript=no,vnet_hdr=on",
                    "-device", "virtio-net-device,netdev=n0"]
        return ["-netdev", f"user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:{self.fwd_port}-:"
                f"{GUEST_PORT}", "-device", "virtio-net-device,netdev=n0"]

    def prefix(self) -> list[str]:
        if self.kind != "tap":
            return []
        return ["unshare", "-n", "sh", "-c", namespace_setup(False), "sh"]

    def guest_setup(self) -> str:
        if self.kind == "tap":
            return f"ifconfig eth0 {GUEST} netmask 255.255.255.0 up"
        return ("ifconfig eth0 10.0.2.15 netmask 255.255.255.0 up && "
                "route add default gw 10.0.2.2")

    def host_python(self, guest: LeanGuest, script: str, *args: str) -> subprocess.Popen:
        ns = ["nsenter", f"--net=/proc/{guest.proc.pid}/ns/net"] if self.kind == "tap" else []
        return subprocess.Popen([*ns, sys.executable, "-c", script, *args],
                                stdout=subprocess.PIPE, text=True)

    def to_guest(self) -> tuple[str, int]:
        return (GUEST, GUEST_PORT) if self.kind == "tap" else ("127.0.0.1", self.fwd_port)

    def host_addr(self) -> tuple[str, str]:
        """(where the host listens, how the guest names it)"""
        return (HOST, HOST) if self.kind == "tap" else ("127.0.0.1", "10.0.2.2")


def mbits(line: str) -> float:
    size, seconds = line.split()
    return int(size) * 8 / float(seconds) / 1e6


def measure(name: str, qemu: bool, link: Link, mb: int) -> dict[str, float]:
    chunks = mb * 1024 * 1024 // CHUNK
    guest = LeanGuest(link.net_args(), qemu=qemu, prefix=link.prefix())
    try:
        start = time.monotonic()
        guest.wait_prompt()
        print(f"{name}: shell after {time.monotonic() - start:.0f} s", file=sys.stderr)
        guest.run(link.guest_setup())
        # host -> guest: the listener first (a connection before it would be refused)
        guest.run(f"(nc -l -p {GUEST_PORT} >/dev/null &) ; sleep 2")
        sender = link.host_python(guest, SENDER, *map(str, link.to_guest()), str(chunks))
        h2g = mbits(sender.communicate(timeout=1800)[0])
        # guest -> host
        listen, seen_as = link.host_addr()
        port = free_port()
        receiver = link.host_python(guest, RECEIVER, listen, str(port))
        assert receiver.stdout.readline().strip() == "ready"
        guest.run(f"dd if=/dev/zero bs={CHUNK} count={chunks} 2>/dev/null | "
                  f"nc {seen_as} {port}", timeout=1800)
        g2h = mbits(receiver.communicate(timeout=60)[0])
    finally:
        guest.close()
    return {"host->guest": h2g, "guest->host": g2h}


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--link", choices=("user", "tap"), default="user")
    parser.add_argument("--mb", type=int, default=16, help="megabytes per direction")
    parser.add_argument("--skip-qemu", action="store_true")
    parser.add_argument("--pemu-root", type=Path, default=ROOT,
                        help="run pemu from this checkout (default: this one)")
    args = parser.parse_args()
    # pemu's PYTHONPATH and working directory (conftest.pemu_env, LeanGuest)
    conftest.ROOT = lean_guest.ROOT = args.pemu_root.resolve()
    runs = [] if args.skip_qemu or shutil.which("qemu-system-riscv64") is None else ["qemu"]
    runs.append("pemu")
    results = {}
    for name in runs:
        results[name] = measure(name, name == "qemu", Link(args.link), args.mb)
        print(f"{name}: {results[name]}", file=sys.stderr)
    print(f"link={args.link} mb={args.mb} load={os.getloadavg()[0]:.1f}")
    print(f"{'direction':<14}" + "".join(f"{n + ' Mbit/s':>14}" for n in results)
          + ("   pemu/qemu" if "qemu" in results else ""))
    for direction in ("host->guest", "guest->host"):
        row = f"{direction:<14}" + "".join(f"{r[direction]:>14.1f}" for r in results.values())
        if "qemu" in results:
            row += f"   {results['pemu'][direction] / results['qemu'][direction]:>9.2f}"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
