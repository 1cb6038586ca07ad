"""Storage throughput and IOPS through each PCI storage controller, in the Debian guest,
pemu and QEMU on the same command line in one run.

    python3 bench/bench_storage.py [--seq-mib 32] [--ios 1000] [--skip-qemu]
                                   [--skip-pemu] [--backend native]

Each emulator boots ``riscv64-debian`` once on ``-M virt`` (PLIC: INTx) with four
disks, one per controller: virtio-blk-pci, nvme, ich9-ahci + ide-hd and
virtio-scsi-pci + scsi-hd, each a raw image on the host.  At the guest's shell, for
each disk:

* sequential: ``dd bs=1M`` of ``--seq-mib`` MiB, written then read, with O_DIRECT
  (``oflag=direct`` / ``iflag=direct``: the page cache is not measured), timed by
  /proc/uptime (10 ms steps);
* random 4 KiB: ``--ios`` reads then as many writes at xorshift offsets over the
  written area, one at a time (queue depth 1), O_DIRECT, by ``rio`` (bench/guest/rio.c:
  busybox has no random-I/O tool and a dd per I/O would time process start-up;
  compiled here with riscv64-linux-gnu-gcc and typed into the guest as base64).

It prints MiB/s and IOPS per controller and emulator and the pemu/QEMU ratio (above
1.0: pemu is faster).  A controller whose disk the guest does not find under one
emulator is reported as such (QEMU 7.2's NVMe with this 6.12 kernel, for one).
Each boot takes minutes under pemu.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pemu_bytecode import compile_pemu  # noqa: E402

from pemu.guests import guest_file  # noqa: E402

DEBIAN = guest_file("riscv64-debian")
OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin")
RIO_SOURCE = Path(__file__).with_name("guest") / "rio.c"
SHELL_READY = "pemu: interactive shell"
CONTROLLERS = ("virtio-blk-pci", "nvme", "ich9-ahci", "virtio-scsi-pci")
TESTS = ("seq write", "seq read", "rand read", "rand write")


def build_rio(out: Path) -> bytes:
    subprocess.run(["riscv64-linux-gnu-gcc", "-nostdlib", "-static", "-Os", "-ffreestanding",
                    "-fno-builtin", "-fno-tree-loop-distribute-patterns", "-Wl,--no-relax",
                    "-Wl,--build-id=none", "-s", "-o", str(out), str(RIO_SOURCE)], check=True)
    return out.read_bytes()


def disk_args(images: dict[str, Path]) -> list[str]:
    def drive(name: str) -> list[str]:
        return ["-drive", f"file={images[name]},format=raw,if=none,id={name}"]
    return [*drive("virtio-blk-pci"), "-device", "virtio-blk-pci,drive=virtio-blk-pci",
            *drive("nvme"), "-device", "nvme,serial=bench,drive=nvme",
            *drive("ich9-ahci"), "-device", "ich9-ahci,id=ahci",
            "-device", "ide-hd,drive=ich9-ahci,bus=ahci.0",
            *drive("virtio-scsi-pci"), "-device", "virtio-scsi-pci,id=scsi0",
            "-device", "scsi-hd,drive=virtio-scsi-pci,bus=scsi0.0"]


def controller_of(name: str, path: str) -> str | None:
    """Which controller a /sys/block entry hangs off (by its sysfs path)."""
    if "/pci" not in path:
        return None
    if name.startswith("nvme"):
        return "nvme"
    if name.startswith("vd"):
        return "virtio-blk-pci"
    if name.startswith("sd"):
        return "ich9-ahci" if "/ata" in path else "virtio-scsi-pci"
    return None


class Shell:
    """The guest's shell on the emulator's stdio."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.out = bytearray()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while chunk := self.proc.stdout.read1(4096):  # type: ignore[union-attr]
            self.out += chunk

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.compile(pattern, re.M).search(self.out.decode(errors="replace"), start)
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        tail = self.out.decode(errors="replace")[-2000:]
        raise RuntimeError(f"no {pattern!r} from the guest:\n{tail}")

    def run(self, command: str, timeout: float = 600) -> str:
        start = len(self.out)
        self.proc.stdin.write(f"{command}; echo BENCH-DONE\n".encode())  # type: ignore
        self.proc.stdin.flush()  # type: ignore[union-attr]
        m = self.wait_for(r"^BENCH-DONE\r?$", timeout, start)
        return self.out.decode(errors="replace")[start:m.start()]


def measure_disk(shell: Shell, dev: str, seq_mib: int, ios: int) -> dict[str, float]:
    result = {}
    for test, flag in (("seq write", "if=/dev/zero of=/dev/X oflag=direct"),
                       ("seq read", "if=/dev/X of=/dev/null iflag=direct")):
        out = shell.run(f"a=$(cut -d' ' -f1 /proc/uptime); dd {flag.replace('X', dev)} "
                        f"bs=1M count={seq_mib} 2>/dev/null; echo ELAPSED $a "
                        "$(cut -d' ' -f1 /proc/uptime)")
        m = re.search(r"^ELAPSED ([\d.]+) ([\d.]+)", out, re.M)
        if m is None:
            raise RuntimeError(f"{test} on {dev}: {out}")
        seconds = max(float(m[2]) - float(m[1]), 0.01)
        result[test] = seq_mib / seconds  # MiB/s
    blocks = seq_mib * 256  # the area the sequential write filled
    for test, mode in (("rand read", "r"), ("rand write", "w")):
        out = shell.run(f"echo NS $(/tmp/rio /dev/{dev} {mode} {ios} {blocks})")
        m = re.search(r"^NS (\d+)", out, re.M)
        if m is None:
            raise RuntimeError(f"{test} on {dev}: {out}")
        result[test] = ios / (int(m[1]) / 1e9)  # IOPS
    return result


def measure(name: str, cmd: list[str], rio: bytes, seq_mib: int, ios: int,
            boot_timeout: float) -> dict[str, dict[str, float] | None]:
    with tempfile.TemporaryDirectory(prefix="pemu-bench-storage-") as tmp:
        images = {}
        for controller in CONTROLLERS:
            images[controller] = Path(tmp) / f"{controller}.raw"
            with open(images[controller], "wb") as f:
                f.truncate((seq_mib + 16) << 20)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        full = [*cmd, "-M", "virt", "-m", "512M", "-smp", "1", "-nographic", "-no-reboot",
                "-kernel", str(DEBIAN / "Image"), "-initrd",
                str(DEBIAN / "initramfs.cpio.gz"), "-append", "console=ttyS0",
                *disk_args(images)]
        start = time.monotonic()
        proc = subprocess.Popen(full, env=env, cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        shell = Shell(proc)
        try:
            shell.wait_for(SHELL_READY, boot_timeout)
            print(f"{name}: shell after {time.monotonic() - start:.0f} s", file=sys.stderr)
            time.sleep(2)
            encoded = base64.encodebytes(rio).decode()
            shell.run(f"base64 -d >/tmp/rio <<'EOF'\n{encoded}EOF\nchmod +x /tmp/rio")
            listing = shell.run('for b in /sys/block/*; do echo "BLOCK ${b##*/} '
                                '$(readlink -f $b)"; done')
            disks = {}
            for dev, path in re.findall(r"^BLOCK (\S+) (/sys\S+)", listing, re.M):
                controller = controller_of(dev, path)
                if controller is not None:
                    disks[controller] = dev
            results: dict[str, dict[str, float] | None] = {}
            for controller in CONTROLLERS:
                dev = disks.get(controller)
                results[controller] = (measure_disk(shell, dev, seq_mib, ios)
                                       if dev else None)
                print(f"{name}: {controller}: {results[controller]}", file=sys.stderr)
        finally:
            proc.kill()
            proc.wait()
    return results


def report(results: dict[str, dict[str, dict[str, float] | None]]) -> None:
    names = list(results)
    header = f"{'controller':<17}{'test':<18}" + "".join(f"{n:>12}" for n in names)
    print(header + ("   pemu/qemu" if "qemu" in results else ""))
    for controller in CONTROLLERS:
        for test in TESTS:
            unit = "MiB/s" if test.startswith("seq") else "IOPS"
            row = f"{controller:<17}{test + ' ' + unit:<18}"
            values = []
            for n in names:
                r = results[n][controller]
                values.append(None if r is None else r[test])
                row += f"{'absent':>12}" if r is None else f"{r[test]:>12.1f}"
            if "qemu" in results and "pemu" in results:
                pemu, qemu = values[names.index("pemu")], values[names.index("qemu")]
                row += f"   {pemu / qemu:>9.2f}" if pemu and qemu else "         -"
            print(row)


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-mib", type=int, default=32)
    parser.add_argument("--ios", type=int, default=1000)
    parser.add_argument("--skip-qemu", action="store_true")
    parser.add_argument("--skip-pemu", action="store_true")
    parser.add_argument("--backend", default="native", help="pemu's TCG backend")
    parser.add_argument("--boot-timeout", type=float, default=1800)
    args = parser.parse_args()
    if not (DEBIAN / "Image").exists() or not OPENSBI.exists():
        sys.exit("needs ../shared/guests/riscv64-debian and Debian's opensbi")
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        sys.exit("needs riscv64-linux-gnu-gcc (Debian package gcc-riscv64-linux-gnu)")
    with tempfile.TemporaryDirectory() as tmp:
        rio = build_rio(Path(tmp) / "rio")
    runs: list[tuple[str, list[str]]] = []
    if not args.skip_qemu:
        qemu = shutil.which("qemu-system-riscv64")
        if qemu is None:
            sys.exit("needs qemu-system-riscv64 (or --skip-qemu)")
        runs.append(("qemu", [qemu, "-bios", "default"]))
    if not args.skip_pemu:
        runs.append(("pemu", [sys.executable, "-m", "pemu.cli.system_riscv64", "-accel",
                              f"tcg,backend={args.backend}"]))
    results = {name: measure(name, prefix, rio, args.seq_mib, args.ios, args.boot_timeout)
               for name, prefix in runs}
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
