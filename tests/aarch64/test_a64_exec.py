"""A64 blocks run on the TCG engine, both backends: exact NZCV against a model of the
Arm ARM's AddWithCarry, and precise undefined-instruction traps.  Needs no cross
tools (the words are encoded here)."""

from __future__ import annotations

import random
import struct

import pytest

from pemu.accel.tcg.backend.x86_64 import host_supported
from pemu.accel.tcg.engine import TCGEngine
from pemu.linux_user.vmem import PROT_EXEC, PROT_READ, GuestVirtualMemory
from pemu.target.aarch64.exceptions import ALIGNMENT, SVC, UNDEFINED, Aarch64Trap
from pemu.target.aarch64.tcg_target import AARCH64

CODE = 0x10000
BACKENDS = ["python"] + (["native"] if host_supported() else [])
MRS_X3_NZCV = 0xD53B4203
SVC_0 = 0xD4000001


def run(words: list[int], backend: str, regs: dict[int, int], nzcv: int = 0):
    mem = GuestVirtualMemory(size=1 << 24)
    mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
    mem.write_initial(CODE, struct.pack(f"<{len(words)}I", *words))
    engine = TCGEngine(mem, AARCH64, backend=backend)
    cpu = engine.create_cpu()
    for r, v in regs.items():
        cpu.state.set_x(r, v)
    cpu.state.nzcv = nzcv
    cpu.state.pc = CODE
    with pytest.raises(Aarch64Trap) as trap:
        cpu.run()
    return cpu.state, trap.value


def add_with_carry(x: int, y: int, carry: int, bits: int) -> tuple[int, int]:
    """The Arm ARM's AddWithCarry: (result, NZCV as bits 31:28)."""
    mask = (1 << bits) - 1
    x, y = x & mask, y & mask
    unsigned_sum = x + y + carry

    def s(v: int) -> int:
        return v - (1 << bits) if v >> (bits - 1) else v
    signed_sum = s(x) + s(y) + carry
    result = unsigned_sum & mask
    n = result >> (bits - 1)
    z = int(result == 0)
    c = int(result != unsigned_sum)
    v = int(s(result) != signed_sum)
    return result, n << 31 | z << 30 | c << 29 | v << 28


INTERESTING = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x7FFF_FFFF_FFFF_FFFF,
               0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0x1_0000_0000]


@pytest.mark.parametrize("backend", BACKENDS)
def test_adds_subs_adcs_sbcs_flags_match_the_arm_model(backend: str) -> None:
    rng = random.Random(7)
    pairs = [(a, b) for a in INTERESTING for b in INTERESTING][::2]
    pairs += [(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(12)]
    # x2 = x0 OP x1 (sf:op:S), with the carry flag in for adcs/sbcs
    forms = {"adds": (0xAB010002, False, False), "subs": (0xEB010002, True, False),
             "adds_w": (0x2B010002, False, False), "subs_w": (0x6B010002, True, False),
             "adcs": (0xBA010002, False, True), "sbcs": (0xFA010002, True, True),
             "adcs_w": (0x3A010002, False, True), "sbcs_w": (0x7A010002, True, True)}
    for name, (word, sub, with_carry) in forms.items():
        bits = 32 if name.endswith("_w") else 64
        for a, b in pairs[:: 3 if with_carry else 1]:
            for carry_in in ((0, 1) if with_carry else (None,)):
                state, trap = run([word, MRS_X3_NZCV, SVC_0], backend, {0: a, 1: b},
                                  nzcv=(carry_in or 0) << 29)
                y = ~b if sub else b
                carry = carry_in if with_carry else int(sub)
                result, flags = add_with_carry(a, y, carry, bits)
                assert trap.kind == SVC
                assert (state.x(2), state.x(3)) == (result, flags), (name, hex(a), hex(b))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_undefined_instruction_traps_precisely(backend: str) -> None:
    # add x0, x0, #1; add x0, x0, #1; udf #0; add x0, x0, #1
    state, trap = run([0x91000400, 0x91000400, 0x00000000, 0x91000400], backend, {0: 5})
    assert trap.kind == UNDEFINED
    assert state.pc == CODE + 8
    assert state.x(0) == 7


@pytest.mark.parametrize("backend", BACKENDS)
def test_loads_stores_and_writeback(backend: str) -> None:
    # stp x0, x1, [sp, #-16]!; ldr x2, [sp], #8; ldrsb x3, [sp]; svc #0
    words = [0xA9BF07E0, 0xF84087E2, 0x39800000 | 31 << 5 | 3, SVC_0]
    mem_top = 0x20000
    mem = GuestVirtualMemory(size=1 << 24)
    mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
    mem.map_anonymous(mem_top - 0x1000, 0x1000, PROT_READ | 2)
    mem.write_initial(CODE, struct.pack("<4I", *words))
    cpu = TCGEngine(mem, AARCH64, backend=backend).create_cpu()
    cpu.state.set_x(0, 0x1122_3344_5566_7788)
    cpu.state.set_x(1, 0xFFFF_FFFF_FFFF_FF80)
    cpu.state.sp = mem_top
    cpu.state.pc = CODE
    with pytest.raises(Aarch64Trap):
        cpu.run()
    assert cpu.state.x(2) == 0x1122_3344_5566_7788
    assert cpu.state.x(3) == 0xFFFF_FFFF_FFFF_FF80  # sign-extended 0x80
    assert cpu.state.sp == mem_top - 8


CASP_X = 0x48207C82  # casp x0, x1, x2, x3, [x4]
CASP_W = 0x08207C82  # casp w0, w1, w2, w3, [x4]
CASP_ODD_RS = 0x48217C82  # casp x1, x2, x2, x3, [x4]: Rs odd is UNDEFINED


def _run_casp(word: int | list[int], backend: str, memory: bytes, regs: dict[int, int],
              inline: bool = False):
    """Atomics at [x4] (a data page) then SVC; ``inline``: translated as system mode
    does (one host thread: atomic_inline.py), else through the helpers."""
    words = [word] if isinstance(word, int) else word
    data = 0x20000
    mem = GuestVirtualMemory(size=1 << 24)
    mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
    mem.map_anonymous(data, 0x1000, PROT_READ | 2)
    mem.write_initial(CODE, struct.pack(f"<{len(words) + 1}I", *words, SVC_0))
    mem.write_initial(data, memory)
    engine = TCGEngine(mem, AARCH64, backend=backend)
    engine.translator.inline_atomics = inline
    cpu = engine.create_cpu()
    for r, v in {**regs, 4: data}.items():
        cpu.state.set_x(r, v)
    cpu.state.pc = CODE
    with pytest.raises(Aarch64Trap) as trap:
        cpu.run()
    return cpu.state, trap.value, mem.read(data, 16)


@pytest.mark.parametrize("inline", [False, True], ids=["helper", "inline"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_casp_swaps_a_pair_only_when_both_halves_match(backend: str, inline: bool) -> None:
    """CASP (FEAT_LSE; Linux's SLUB freelist with -cpu max): the old pair comes back in
    Rs, Rs+1 either way; the new pair is stored only if both halves matched."""
    old = struct.pack("<2Q", 0x1111_2222_3333_4444, 0x5555_6666_7777_8888)
    match = {0: 0x1111_2222_3333_4444, 1: 0x5555_6666_7777_8888, 2: 0xA, 3: 0xB}
    state, trap, memory = _run_casp(CASP_X, backend, old, match, inline)
    assert trap.kind == SVC
    assert memory == struct.pack("<2Q", 0xA, 0xB)
    assert (state.x(0), state.x(1)) == (0x1111_2222_3333_4444, 0x5555_6666_7777_8888)
    state, _, memory = _run_casp(CASP_X, backend, old, {**match, 1: 0}, inline)  # differs
    assert memory == old
    assert (state.x(0), state.x(1)) == (0x1111_2222_3333_4444, 0x5555_6666_7777_8888)
    # the W form: two 32-bit halves of one doubleword, results zero-extended
    state, _, memory = _run_casp(CASP_W, backend, old[:8] + bytes(8),
                                 {0: 0xFFFF_FFFF_3333_4444, 1: 0x1111_2222, 2: 7, 3: 9},
                                 inline)
    assert memory == struct.pack("<2IQ", 7, 9, 0)
    assert (state.x(0), state.x(1)) == (0x3333_4444, 0x1111_2222)
    state, trap, _ = _run_casp(CASP_ODD_RS, backend, old, {}, inline)
    assert trap.kind == UNDEFINED and state.pc == CODE


M64 = (1 << 64) - 1
# word (Rs = x1, Rt = x2, Rn = x4), size, the new memory value from (old, operand)
LSE_CASES = {
    "ldadd": (0xF8210082, 8, lambda o, v: o + v),
    "ldclr": (0xF8211082, 8, lambda o, v: o & ~v),
    "ldeor": (0xF8212082, 8, lambda o, v: o ^ v),
    "ldset": (0xF8213082, 8, lambda o, v: o | v),
    "ldsmax": (0xF8214082, 8, lambda o, v: max(o - (o >> 63 << 64), v - (v >> 63 << 64))),
    "ldumin": (0xF8217082, 8, min),
    "swp": (0xF8218082, 8, lambda o, v: v),
    "ldadd_w": (0xB8210082, 4, lambda o, v: o + v),
    "ldsmaxb": (0x38214082, 1, lambda o, v: max(o - (o >> 7 << 8), v - (v >> 7 << 8))),
    "lduminh": (0x78217082, 2, min),
    "cas_x": (0xC8A17C82, 8, None),
    "cas_w": (0x88A17C82, 4, None),
}


@pytest.mark.parametrize("inline", [False, True], ids=["helper", "inline"])
@pytest.mark.parametrize("case", sorted(LSE_CASES))
def test_lse_atomics_inline_and_helper_agree_with_the_model(case: str, inline: bool) -> None:
    """Rt (here x2) gets the old value zero-extended from the access size; memory gets
    op(old, Rs) truncated (CAS: Rt where the old value equals Rs, and Rs gets it)."""
    word, size, op = LSE_CASES[case]
    mask = (1 << 8 * size) - 1
    rng = random.Random(case)
    backend = BACKENDS[-1]
    for _ in range(4):
        old = rng.getrandbits(64)
        operand = rng.choice([rng.getrandbits(64), old & mask, M64, 0])
        memory = struct.pack("<Q", old) + bytes(8)
        state, trap, after = _run_casp(word, backend, memory, {1: operand, 2: 0x77},
                                       inline)
        assert trap.kind == SVC
        got = struct.unpack("<Q", after[:8])[0]
        untouched = old & ~mask  # the bytes past the access
        if op is None:  # CAS
            new = 0x77 if old & mask == operand & mask else old & mask
            assert got == untouched | new
            assert state.x(1) == old & mask
        else:
            low = lambda v: v & mask  # noqa: E731
            assert got == untouched | low(op(low(old), low(operand))), case
            assert state.x(2) == old & mask
    # a misaligned address raises the alignment fault at the instruction
    if size > 1:
        data = 0x20000
        mem = GuestVirtualMemory(size=1 << 24)
        mem.map_anonymous(CODE, 0x1000, PROT_READ | PROT_EXEC)
        mem.map_anonymous(data, 0x1000, PROT_READ | 2)
        mem.write_initial(CODE, struct.pack("<2I", word, SVC_0))
        engine = TCGEngine(mem, AARCH64, backend=backend)
        engine.translator.inline_atomics = inline
        cpu = engine.create_cpu()
        cpu.state.set_x(4, data + 1)
        cpu.state.pc = CODE
        with pytest.raises(Aarch64Trap) as trap_info:
            cpu.run()
        assert trap_info.value.kind == ALIGNMENT and cpu.state.pc == CODE


LDXR_X2 = 0xC85F7C82  # ldxr x2, [x4]
STXR_W5_X1 = 0xC8057C81  # stxr w5, x1, [x4]
STR_X3 = 0xF9000083  # str x3, [x4]


@pytest.mark.parametrize("inline", [False, True], ids=["helper", "inline"])
def test_exclusive_pair_stores_only_while_the_monitor_holds(inline: bool) -> None:
    backend = BACKENDS[-1]
    memory = struct.pack("<2Q", 0x1234, 0)
    regs = {1: 0xAAAA, 3: 0xBBBB, 5: 0x99}
    state, _, after = _run_casp([LDXR_X2, STXR_W5_X1], backend, memory, regs, inline)
    assert (state.x(2), state.x(5), after[:8]) == (0x1234, 0, struct.pack("<Q", 0xAAAA))
    state, _, after = _run_casp([STXR_W5_X1], backend, memory, regs, inline)  # no LDXR
    assert (state.x(5), after) == (1, memory)
    # the value changed under the monitor: the store exclusive fails
    state, _, after = _run_casp([LDXR_X2, STR_X3, STXR_W5_X1], backend, memory, regs,
                                inline)
    assert (state.x(5), after[:8]) == (1, struct.pack("<Q", 0xBBBB))
    # and a second STXR after a successful one fails (the monitor closed)
    state, _, after = _run_casp([LDXR_X2, STXR_W5_X1, STR_X3, STXR_W5_X1], backend,
                                memory, regs, inline)
    assert (state.x(5), after[:8]) == (1, struct.pack("<Q", 0xBBBB))
