"""The native code generator's templates: a guest access's code (memory_common.AccessCode,
encoder.Template) is assembled once per registers/size/MMU index and then copied, its
jumps patched in each copy.  A copy must be byte for byte what assembling
the same access in place with the general encoder gives, wherever it lands; and the
table-driven ``mov reg, imm`` (encoder.mov_ri_code, used for every constant and exit)
must mean what capstone reads in it."""

from __future__ import annotations

import random
import struct

import capstone
import pytest

from pemu.accel.tcg.backend.x86_64 import encoder as x
from pemu.accel.tcg.backend.x86_64.encoder import R11, RCX, Assembler, Label
from pemu.accel.tcg.backend.x86_64.memory_common import (
    BACK,
    SLOW,
    _thunk_call,
    emit_extend,
)
from pemu.accel.tcg.backend.x86_64.memory_softmmu import SoftmmuMemory
from pemu.accel.tcg.backend.x86_64.memory_user import UserMemory
from pemu.accel.tcg.backend.x86_64.regalloc import ALLOCATABLE
from pemu.accel.tcg.ir import MemOp
from pemu.accel.tcg.softmmu import MMU_DYNAMIC, N_MMU
from pemu.linux_user.vmem import GuestVirtualMemory

CASES = 300  # random accesses per memory model


def _models() -> list[tuple[str, object, list]]:
    """(name, model, the values of its per-block key to try)."""
    softmmu = SoftmmuMemory(tlb_slot=40, mmu_index=lambda flags: flags)
    user = UserMemory(GuestVirtualMemory(), None, 7)
    return [("softmmu", softmmu, [MMU_DYNAMIC, *range(N_MMU)]), ("user", user, [None])]


def _set_key(model: object, key: object) -> None:
    if isinstance(model, SoftmmuMemory):
        model.idx = key


def _in_place(model: object, labels: list[Label], prefix: bytes, gap: bytes, addr: int,
              size: int, store: bool, emit_access, emit_args, emit_after) -> Assembler:
    """The access assembled in place, as code generation did before templates: the
    checks and the access, (the rest of the block), the slow path's call, the model's
    cold code."""
    a = Assembler()
    a.buf += prefix
    target = model.assemble_fast_path(a, labels, addr, size, store)
    if target is None:
        a.jmp(labels[SLOW])
    elif emit_access is not None:
        emit_access(a, target)
    a.bind(labels[BACK])
    a.buf += gap
    a.bind(labels[SLOW])
    if emit_args is not None:
        emit_args(a)
    _thunk_call(a)
    emit_after(a)
    a.jmp(labels[BACK])
    model.assemble_cold(a, labels, addr, size, store)
    return a


def _copied(code, prefix: bytes, gap: bytes) -> tuple[bytes, int]:
    """The same from the templates, as load/store and the codegen's slow path emit
    them; returns the code and where the tail starts."""
    buf = bytearray(prefix)
    hot_at = len(buf)
    buf += code.hot
    back = hot_at + code.back if code.back is not None else len(buf)  # (a constant
    buf += gap                                          # store's caller: no store here)
    tail_at = code.emit_cold(buf, hot_at, back, len(buf))
    return bytes(buf), tail_at


def _jump_targets(code: bytes) -> list[tuple[int, int]]:
    """(instruction address, target) of every rel32 jump and call capstone decodes."""
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    out = []
    for insn in md.disasm(code, 0):
        if insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL):
            op, = insn.operands
            if op.type == capstone.x86.X86_OP_IMM:
                out.append((insn.address, op.imm))
    return out


def _access(model: object, rng: random.Random, addr: int, size: int) -> tuple:
    """A random access from ``addr``: (its AccessCode, the in-place emitters of the
    access, of the slow path's arguments and of what follows its call, store?)."""
    regs = list(ALLOCATABLE)
    kind = rng.choice(("ld", "st", "st_imm"))
    if kind == "ld":
        dst = rng.choice([r for r in regs if r != addr])
        memop = MemOp(size, rng.random() < 0.5, rng.random() < 0.2)
        w = rng.choice((32, 64))
        return (model.load_code(addr, dst, memop, w),
                lambda t, target: emit_extend(t, memop, w, dst, target),
                lambda t: t.mov_rr(64, R11, addr),
                lambda t: emit_extend(t, memop, w, dst, R11), memop.for_store)
    if kind == "st":
        rv = rng.choice(regs)

        def set_args(t: Assembler) -> None:
            t.mov_rr(64, R11, addr)
            t.mov_rr(64, RCX, rv)
        def store(t: Assembler, target: x.Mem) -> None:
            t.store(size, target, rv)
            model.emit_store_done(t)  # (softmmu: the page's code-write mark)
        return model.store_code(addr, rv, size), store, set_args, lambda t: None, True
    # a constant store: the constant and its slow-path argument are the caller's
    return model.store_code(addr, None, size), None, None, lambda t: None, True


@pytest.mark.parametrize("name", ["softmmu", "user"])
def test_access_templates_copy_to_what_in_place_assembly_gives(name):
    rng = random.Random(f"templates-{name}")
    (_n, model, keys), = [m for m in _models() if m[0] == name]
    for _ in range(CASES):
        _set_key(model, rng.choice(keys))
        addr = rng.choice(ALLOCATABLE)
        size = rng.choice((1, 2, 4, 8))
        prefix = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        gap = b"\x90" * rng.randrange(0, 300)
        code, *access, store = _access(model, rng, addr, size)
        kind = (model.access_key(), addr, size, store)
        want = _in_place(model, [Label() for _ in range(4)], prefix, gap, addr, size,
                         store, *access)
        got, tail_at = _copied(code, prefix, gap)
        assert got == want.finish(), (name, kind, addr, size)
        # the tail's fields outside the block: the thunk call's and the exception
        # exit's rel32, right after their opcodes
        call_at, exc_at = code.ext
        assert got[tail_at + call_at - 1] == 0xE8
        assert got[tail_at + exc_at - 2:tail_at + exc_at] == b"\x0f\x85"
        # every jump of the copy lands inside it (patched in place; the two jumps out
        # of the block hold 0, the next instruction, until linked)
        for insn_at, target in _jump_targets(got[len(prefix):]):
            assert 0 <= target < len(got) - len(prefix), (name, kind, hex(insn_at))


def test_template_resolves_its_own_labels_and_refuses_a_dangling_jump():
    a = Assembler()
    a.buf += b"\xCC" * 3
    top, out, mid = Label(), Label(), Label()
    a.bind(top)
    a.alu_ri(x.SUB, 64, RCX, 1)  # 4 bytes
    a.jcc(x.CC_NE, top)  # inside the template: resolved at once
    a.bind(mid)
    a.jmp(out)  # a parameter: left for each copy
    t = x.Template(a, [out, mid])
    assert t.jumps == ((14, 0),)  # jmp out's rel32 field, label 0
    assert t.binds == ((1, 13),)  # mid, after the jne
    assert struct.unpack_from("<i", t.code, 9)[0] == 3 - 13  # jne top
    assert dict(_jump_targets(t.code[3:]))[4] == 0  # as capstone reads it
    dangling = Assembler()
    dangling.jmp(Label())
    with pytest.raises(ValueError, match="neither bound"):
        x.Template(dangling, [])


def _capstone_value(code: bytes) -> tuple[int, int]:
    """(register, 64-bit value it holds) after the one instruction in ``code``."""
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    insns = list(md.disasm(code, 0))
    assert len(insns) == 1 and insns[0].size == len(code), code.hex()
    insn = insns[0]
    dst, src = insn.operands
    reg = insn.reg_name(dst.reg)
    if insn.mnemonic == "xor":
        assert src.type == capstone.x86.X86_OP_REG and src.reg == dst.reg
        value = 0
    else:
        assert insn.mnemonic in ("mov", "movabs") and src.type == capstone.x86.X86_OP_IMM
        value = src.imm & ((1 << 64) - 1)
        if dst.size == 8 and insn.mnemonic == "mov":
            value = struct.unpack("<q", struct.pack("<Q", value))[0] & ((1 << 64) - 1)
    assert dst.size in (4, 8)  # a 32-bit write zero-extends: the value is as read
    return x.REG_NAMES.index(_reg64(reg)), value


def _reg64(name: str) -> str:
    """capstone's name of a register's 32- or 64-bit view -> its 64-bit name."""
    if name.startswith("r") and name[1:].rstrip("d").isdigit():
        return name.rstrip("d")
    return "r" + name[1:] if name.startswith("e") else name


def test_mov_ri_code_loads_the_value_capstone_reads():
    rng = random.Random("mov_ri")
    edges = [0, 1, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1 << 32, (1 << 63) - 1, 1 << 63,
             (1 << 64) - 1, (1 << 64) - (1 << 31), (1 << 64) - (1 << 31) - 1, -1, -5]
    values = edges + [rng.getrandbits(rng.choice((8, 31, 32, 33, 63, 64))) for _ in range(200)]
    for reg in range(16):
        for v in values:
            code = x.mov_ri_code(reg, v)
            assert _capstone_value(code) == (reg, v & ((1 << 64) - 1)), (reg, hex(v))
            if v & ((1 << 64) - 1) < (1 << 32):  # the shortest form: 32 bits at most
                assert len(code) <= (6 if reg >= 8 else 5)
