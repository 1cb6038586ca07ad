"""accel/tcg runs any target that describes itself with a TCGTarget.

A toy accumulator machine, with a state layout unlike RISC-V's, runs on the engine
and both backends: the engine and the backends must find the pc and the exit
request where the target's layout says, not at RISC-V's slots.
"""

from __future__ import annotations

import ast
import ctypes
from pathlib import Path

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.engine import TCGEngine
from pemu.accel.tcg.ir import CALL_SIDE_EFFECTS, Block, Helper, IRBuilder
from pemu.accel.tcg.opcodes import ADD
from pemu.accel.tcg.target import StateLayout, TCGTarget
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, GuestVirtualMemory

ROOT = Path(__file__).resolve().parents[2]
CODE = 0x10000
# acc at 0; the pc and the exit request deliberately far from RISC-V's 64 and 69
LAYOUT = StateLayout(n_slots=8, pc=5, exit_request=2, tb_flags=3, native_jump_cache=4,
                     native_tlb=6)
INC, DOUBLE, HALT = 1, 2, 0


class Halted(Exception):
    pass


def _halt() -> None:
    raise Halted


HALT_HELPER = Helper("halt", _halt, flags=CALL_SIDE_EFFECTS, n_out=0)


class ToyState:
    def __init__(self) -> None:
        self.block = (ctypes.c_uint64 * LAYOUT.n_slots)()
        self.address = ctypes.addressof(self.block)
        self.slots = memoryview(self.block).cast("B").cast("Q")

    @property
    def pc(self) -> int:
        return self.slots[LAYOUT.pc]

    def copy_from(self, other: ToyState) -> None:
        ctypes.memmove(self.address, other.address, LAYOUT.n_slots * 8)


def toy_translate(pc: int, flags: int, fetch, *, max_insns: int = 256,
                  inline_atomics: bool = False) -> Block:
    """One byte per instruction: INC adds 1 to acc, DOUBLE doubles it, HALT stops."""
    block = Block(pc, flags)
    b = IRBuilder(block, {"acc": 0})
    acc = b.glob("acc")
    cur = pc
    while True:
        op = fetch(cur, 1)
        b.insn_start(cur)
        cur += 1
        if op == HALT:
            b.call(HALT_HELPER, [], [])
            b.goto_pc(cur)
            break
        b.binop(ADD, acc, acc, b.const(1) if op == INC else acc)
        if cur - pc >= max_insns:
            b.goto_pc(cur)
            break
    block.guest_size = cur - pc
    block.n_insns = cur - pc
    return block


TOY = TCGTarget(name="toy", layout=LAYOUT, translate=toy_translate, new_state=ToyState,
                disassemble=lambda code, pc: [f"{pc:#x}: {code.hex()}"],
                dump_registers=lambda state: f"acc={state.slots[0]}")

BACKENDS = ["python"] + (["native"] if host_supported() else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("max_insns", [1, 256])
def test_a_toy_target_runs_on_the_engine(backend: str, max_insns: int) -> None:
    mem = GuestVirtualMemory(size=1 << 24)
    mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
    program = bytes([INC, INC, DOUBLE, INC, DOUBLE, HALT])
    mem.write_initial(CODE, program)
    engine = TCGEngine(mem, TOY, backend=backend, max_insns=max_insns)
    cpu = engine.create_cpu()
    cpu.state.slots[LAYOUT.pc] = CODE
    with pytest.raises(Halted):
        cpu.run()
    assert cpu.state.slots[0] == ((1 + 1) * 2 + 1) * 2
    assert cpu.state.pc == CODE + len(program) - 1  # precise: the halt instruction


def test_request_exit_uses_the_targets_slot() -> None:
    mem = GuestVirtualMemory(size=1 << 24)
    engine = TCGEngine(mem, TOY)
    cpu = engine.create_cpu()
    cpu.request_exit()
    assert cpu.state.slots[LAYOUT.exit_request] == 1
    cpu.run()  # returns at once, clearing the request
    assert cpu.state.slots[LAYOUT.exit_request] == 0


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_accel_tcg_imports_no_target() -> None:
    """Targets import accel/tcg, never the reverse (see accel/tcg/target.py)."""
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p)
                                                  if m.startswith("pemu.target"))
                 for p in (ROOT / "pemu" / "accel" / "tcg").rglob("*.py")}
    assert {p: m for p, m in offenders.items() if m} == {}
