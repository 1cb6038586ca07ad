"""Network throughput: the host's iperf3 against the Debian guest's iperf3 server,
through ``-netdev user`` with ``hostfwd`` (libslirp), pemu and QEMU in one run.

    python3 bench/bench_net.py [--seconds 10] [--skip-qemu] [--backend native]
                               [--netdev-extra ipv6=off]

Each emulator boots ``riscv64-debian`` (``pemu.net=dhcp pemu.iperf3=1``: the guest runs
``iperf3 -s`` on port 5201) with ``-netdev user,hostfwd=tcp:127.0.0.1:PORT-:5201`` and
virtio-net on virtio-mmio, the same command line for both.  Once the guest prints
``PEMU-TEST iperf3 up``, the host runs ``iperf3 -c 127.0.0.1 -p PORT -t SECONDS -J``
twice: host -> guest (guest receives) and ``-R`` guest -> host (guest sends).  It
prints Mbit/s per direction and emulator and the pemu/QEMU ratio (above 1.0: pemu is
faster).  Needs Debian's ``iperf3`` on the host; each boot takes 1-3 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemu_bytecode import compile_pemu  # noqa: E402

from pemu.guests import guest_file  # noqa: E402

DEBIAN = guest_file("riscv64-debian")
OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin")
READY = "PEMU-TEST iperf3 up"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def guest_args(port: int, netdev_extra: str) -> list[str]:
    extra = f",{netdev_extra}" if netdev_extra else ""
    return ["-M", "virt", "-m", "512M", "-display", "none",
            "-kernel", str(DEBIAN / "Image"), "-initrd", str(DEBIAN / "initramfs.cpio.gz"),
            "-append", "console=ttyS0 pemu.net=dhcp pemu.iperf3=1",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:5201{extra}",
            "-device", "virtio-net-device,netdev=n0"]


def iperf3(port: int, seconds: int, reverse: bool) -> float:
    """Mbit/s the receiver saw."""
    cmd = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
    if reverse:
        cmd.append("-R")
    for _ in range(5):
        time.sleep(3)  # the guest's server winds down the previous test first
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
        report = json.loads(out.stdout or "{}")
        if "error" not in report and out.returncode == 0:
            break
        print(f"iperf3: {report.get('error', out.stderr)}; again", file=sys.stderr)
    if "error" in report or out.returncode != 0:
        raise RuntimeError(f"iperf3 failed: {report.get('error', out.stderr)}")
    return report["end"]["sum_received"]["bits_per_second"] / 1e6


def measure(name: str, cmd: list[str], port: int, seconds: int, boot_timeout: float
            ) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="pemu-bench-net-") as tmp:
        console = Path(tmp) / "console.log"
        cmd = [*cmd, "-serial", f"file:{console}"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while READY not in (console.read_text(errors="replace")
                                if console.exists() else ""):
                if proc.poll() is not None or time.monotonic() - start > boot_timeout:
                    raise RuntimeError(f"{name}: no iperf3 server in the guest "
                                       f"(exit {proc.poll()})")
                time.sleep(1)
            boot = time.monotonic() - start
            print(f"{name}: guest ready after {boot:.0f} s", file=sys.stderr)
            time.sleep(2)  # let the guest settle after the boot burst
            result = {"host->guest": iperf3(port, seconds, False),
                      "guest->host": iperf3(port, seconds, True)}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip-qemu", action="store_true")
    parser.add_argument("--backend", default="native", help="pemu's TCG backend")
    parser.add_argument("--netdev-extra", default="ipv6=off",
                        help="more -netdev user options, for both emulators")
    parser.add_argument("--boot-timeout", type=float, default=900)
    args = parser.parse_args()
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        sys.exit("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    if shutil.which("iperf3") is None:
        sys.exit("needs iperf3 on the host (Debian package iperf3)")
    runs: list[tuple[str, list[str]]] = []
    if not args.skip_qemu:
        qemu = shutil.which("qemu-system-riscv64")
        if qemu is None:
            sys.exit("needs qemu-system-riscv64 (or --skip-qemu)")
        runs.append(("qemu", [qemu, "-bios", "default"]))
    runs.append(("pemu", [sys.executable, "-m", "pemu.cli.system_riscv64", "-accel",
                          f"tcg,backend={args.backend}"]))
    results = {}
    for name, prefix in runs:
        port = free_port()
        results[name] = measure(name, [*prefix, *guest_args(port, args.netdev_extra)], port,
                                args.seconds, args.boot_timeout)
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
