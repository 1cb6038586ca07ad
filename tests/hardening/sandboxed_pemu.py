"""pemu-system-riscv64 with a spawn probe inside the same process (for the -sandbox
tests): once the filter is in (``Seccomp: 2``), a pemu thread tries to start a program
and to fork, as a monitor command that spawned a helper would, and writes what happened
to $PEMU_SPAWN_PROBE.  The guest keeps running meanwhile.

usage: python3 sandboxed_pemu.py PEMU-ARGS...
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pemu import threads
from pemu.cli.system_riscv64 import main


def _sandboxed() -> bool:
    with open("/proc/self/status") as f:
        return any(line.split() == ["Seccomp:", "2"] for line in f)


def _probe(out_path: str) -> None:
    while not _sandboxed():
        time.sleep(0.05)
    results = []
    try:
        subprocess.run(["/bin/true"], check=True)
        results.append("spawn: ran")
    except OSError as e:
        results.append(f"spawn: refused errno={e.errno}")
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        results.append("fork: ran")
    except OSError as e:
        results.append(f"fork: refused errno={e.errno}")
    with open(out_path, "w") as f:  # files can still be opened under the filter
        f.write("\n".join(results) + "\n")


if __name__ == "__main__":
    threads.start_daemon(_probe, os.environ["PEMU_SPAWN_PROBE"], name="spawn-probe")
    sys.exit(main(sys.argv[1:]))
