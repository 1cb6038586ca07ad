"""Process start-up through binfmt_misc: pemu (script interpreter, and the resident
server) against qemu-riscv64, on the many-short-processes work of a foreign chroot.

Registers temporary binfmt_misc entries (root needed), runs `busybox true` N times and
a shell loop that starts N processes, and prints times per start and the ratios.
A benchmark, not a test: sudo python3 bench/bench_binfmt.py [N]
or, with a binfmt_misc of its own (private_binfmt.py; Linux 6.7+, no sudo needed):
    python3 bench/bench_binfmt.py --private-binfmt [N]
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pemu_bytecode import compile_pemu
from private_binfmt import FLAG, enter_if_asked

from pemu.guests import guest_file
from pemu.linux_user import binfmt
from pemu.linux_user.binfmt_launcher import socket_name

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def pemu_binfmt(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pemu.linux_user.binfmt", *args], env=ENV,
                   check=True, capture_output=True)


def per_start(argv: list[str], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(argv, check=True, capture_output=True)
    return (time.perf_counter() - start) / n


def loop(bb: str, n: int) -> float:
    start = time.perf_counter()
    subprocess.run([bb, "sh", "-c", f"i=0; while [ $i -lt {n} ]; do {bb} true; "
                    "i=$((i+1)); done"], check=True, capture_output=True)
    return (time.perf_counter() - start) / n


def main() -> int:
    compile_pemu()  # pemu's starts read bytecode, as an installed pemu's do
    args = enter_if_asked(sys.argv[1:])
    n = int(args[0]) if args else 20
    if os.geteuid() != 0:
        print(f"needs root (binfmt_misc), or {FLAG}")
        return 1
    binfmt.ensure_mounted()
    work = Path(tempfile.mkdtemp(prefix="pemu-bench-binfmt-"))
    bb = str(work / "busybox")
    shutil.copy(guest_file("riscv64/busybox"), bb)
    os.chmod(bb, 0o755)
    name = f"pemu-bench-{os.getpid()}"
    results: dict[str, tuple[float, float]] = {}
    server = None
    try:
        # qemu-riscv64 through its own binfmt-style entry
        pemu_binfmt("--install", "--name", name, "--interpreter",
                    shutil.which("qemu-riscv64"), "--flags", "F")
        results["qemu-riscv64"] = per_start([bb, "true"], n), loop(bb, n)
        script = work / "pemu-interp"
        script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                          "from pemu.linux_user.main import binfmt_main\n"
                          "sys.exit(binfmt_main())\n")
        script.chmod(0o755)
        pemu_binfmt("--install", "--name", name, "--interpreter", str(script), "--flags", "P")
        results["pemu, script interpreter"] = per_start([bb, "true"], n), loop(bb, n)
        server = subprocess.Popen([sys.executable, "-m", "pemu.linux_user.binfmt", "--serve",
                                   "--name", name], env=ENV, stderr=subprocess.DEVNULL)
        for _ in range(300):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(b"\0" + socket_name("riscv64", name))
                break
            except OSError:
                time.sleep(0.1)
            finally:
                probe.close()
        pemu_binfmt("--install", "--name", name, "--server", "--launcher",
                    str(work / "launcher"))
        results["pemu, binfmt server"] = per_start([bb, "true"], n), loop(bb, n)
    finally:
        subprocess.run([sys.executable, "-m", "pemu.linux_user.binfmt", "--remove", "--name",
                        name], env=ENV, capture_output=True)
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    q_start, q_loop = results["qemu-riscv64"]
    print(f"{n} starts each; seconds per process start (ratio to qemu-riscv64)")
    print(f"{'':<28}{'exec busybox true':>22}{'sh loop of true':>22}")
    for label, (s, lp) in results.items():
        print(f"{label:<28}{s:>12.3f} ({s / q_start:5.1f}x){lp:>12.3f} ({lp / q_loop:5.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
