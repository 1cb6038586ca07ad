"""Translate real compiler output: instructions of the static riscv64 busybox.

objdump's listing of the binary gives the instruction boundaries and which words are
not instructions; each instruction is translated as a one-instruction block, which must
be well formed before and after the optimizer, and illegal exactly where objdump says
the word is not an instruction.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from rvtest_harness import executable_segment

from pemu.accel.tcg.ir import check_block
from pemu.accel.tcg.opcodes import CALL, INSN_START
from pemu.accel.tcg.optimize import optimize
from pemu.guests import guest_file
from pemu.target.riscv.translate import translate_block

BUSYBOX = guest_file("riscv64/busybox")
_LINE = re.compile(r"\s*([0-9a-f]+):\s+([0-9a-f]{4}|[0-9a-f]{8})\s+(\S+)")
SAMPLE = 7  # every 7th instruction keeps the test to a few seconds
_NOT_INSN = {"unimp", "c.unimp", ".2byte", ".4byte", ".insn"}


@pytest.mark.slow
def test_busybox_instructions_translate() -> None:
    if not BUSYBOX.exists():
        pytest.skip(f"{BUSYBOX} is missing (see the shared guests README)")
    if shutil.which("riscv64-linux-gnu-objdump") is None:
        pytest.skip("riscv64-linux-gnu-objdump is not installed")
    listing = subprocess.run(["riscv64-linux-gnu-objdump", "-d", str(BUSYBOX)],
                             capture_output=True, text=True, check=True).stdout
    insns = [(int(m.group(1), 16), int(m.group(2), 16), m.group(3))
             for m in map(_LINE.match, listing.splitlines()) if m]
    assert len(insns) > 300_000
    base, code = executable_segment(BUSYBOX.read_bytes())

    def fetch(addr: int, size: int) -> int:
        return int.from_bytes(code[addr - base:addr - base + size], "little")

    wrong = []
    for addr, word, mnemonic in insns[::SAMPLE]:
        block = translate_block(addr, 0, fetch, max_insns=1)
        check_block(block)
        body = [op for op in block.ops if op.opc is not INSN_START]
        # just "raise illegal": not the run-time frm check of a dynamic-rm instruction
        illegal = len(body) == 2 and body[0].opc is CALL \
            and body[0].aux.name == "raise_exception" and body[0].ins[0].value == 2
        if illegal != (mnemonic in _NOT_INSN):
            wrong.append(f"0x{addr:x}: {word:x} {mnemonic} -> {'illegal' if illegal else 'ok'}")
        check_block(optimize(block))
    assert not wrong, "\n".join(wrong[:20])
