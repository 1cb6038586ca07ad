"""pemu's bytecode compiled before a benchmark times pemu, as an installed pemu has it.

pip compiles a package's modules as it installs them.  A checkout run where
PYTHONDONTWRITEBYTECODE=1 is set (this project's machines set it) and no bytecode is
cached compiles every module it imports again at every start: 0.45-0.75 s of CPU per
pemu process, a third of a warm lean boot, which QEMU (a compiled program) never pays.
``compile_pemu`` writes the bytecode beside the sources once (compileall writes it
whatever that variable says; Python checks it against each source's size and mtime,
so an edited module is never run stale), and every later start reads it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compile_pemu(tree: Path = ROOT) -> None:
    """Bytecode for every module of the pemu checkout ``tree`` (this one by default; a
    no-op costing ~0.3 s where it is current).  A bench that times another checkout
    compiles that one too: trees compared must start alike."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(tree / "pemu")],
                   check=True, stdout=subprocess.DEVNULL)
