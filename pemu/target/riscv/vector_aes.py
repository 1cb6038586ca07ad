"""Zvkned (vector AES), on the vector unit: the OP-VE major opcode (0x77), OPMVV.

  vaesdm/vaesdf/vaesem/vaesef.vv   funct6 101000, vs1 = 0/1/2/3: one middle or final
  vaesdm/vaesdf/vaesem/vaesef.vs   funct6 101001   decryption/encryption round
  vaesz.vs                         funct6 101001, vs1 = 7: AddRoundKey only
  vaeskf1.vi                       funct6 100010: the next AES-128 round key
  vaeskf2.vi                       funct6 101010: the next AES-256 round key

Each works on element groups of four 32-bit elements (EGS 4, SEW 32): one 128-bit AES
state or round key, word 0 the least significant, so byte k is state byte k (column
k / 4, row k % 4) as in the scalar Zkne/Zknd instructions, whose round halves
(crypto.py) build the full rounds here.  ``.vs`` takes the round key from element
group 0 of vs2 for every group.  vl and vstart must be multiples of 4, SEW 32, the
instructions unmasked; QEMU 7.2 has none of this.
"""

from __future__ import annotations

from collections.abc import Callable

from pemu.target.riscv.crypto import aes64ds, aes64es, aes64esm, aes64im, aes64ks1i
from pemu.target.riscv.vector_exec import IllegalVector, VInsn

OP_VE = 0x77
OPMVV = 2
F6_VV, F6_VS, F6_KF1, F6_KF2 = 0x28, 0x29, 0x22, 0x2A
EGS = 4
M32, M64 = 0xFFFF_FFFF, (1 << 64) - 1

State = tuple[int, int]  # (low, high) 64-bit halves of 128 bits


def is_zvkned(insn: int) -> bool:
    return (insn & 0x7F == OP_VE and insn >> 12 & 7 == OPMVV
            and insn >> 26 in (F6_VV, F6_VS, F6_KF1, F6_KF2))


# -- rounds on a (low, high) state ------------------------------------------------------------

def _enc_middle(s: State, k: State) -> State:
    return aes64esm(s[0], s[1]) ^ k[0], aes64esm(s[1], s[0]) ^ k[1]


def _enc_final(s: State, k: State) -> State:
    return aes64es(s[0], s[1]) ^ k[0], aes64es(s[1], s[0]) ^ k[1]


def _dec_middle(s: State, k: State) -> State:
    # InvShiftRows, InvSubBytes, AddRoundKey, then InvMixColumns (the inverse cipher)
    return (aes64im(aes64ds(s[0], s[1]) ^ k[0]), aes64im(aes64ds(s[1], s[0]) ^ k[1]))


def _dec_final(s: State, k: State) -> State:
    return aes64ds(s[0], s[1]) ^ k[0], aes64ds(s[1], s[0]) ^ k[1]


def _add_round_key(s: State, k: State) -> State:
    return s[0] ^ k[0], s[1] ^ k[1]


_ROUNDS: dict[int, Callable[[State, State], State]] = {
    0: _dec_middle, 1: _dec_final, 2: _enc_middle, 3: _enc_final, 7: _add_round_key}


# -- key schedule -------------------------------------------------------------------------------

def _words(s: State) -> list[int]:
    return [s[0] & M32, s[0] >> 32, s[1] & M32, s[1] >> 32]


def _state(w: list[int]) -> State:
    return w[0] | w[1] << 32, w[2] | w[3] << 32


def _chain(w0: int, previous: list[int]) -> State:
    """w[i] = w[i-1] ^ previous[i] for the last three words."""
    w = [w0]
    for i in (1, 2, 3):
        w.append(w[-1] ^ previous[i])
    return _state(w)


def _sub_rot(word: int, rnum: int) -> int:
    """SubWord(RotWord(word)) ^ Rcon[rnum]; rnum 10: SubWord(word) alone."""
    return aes64ks1i(word << 32, rnum) & M32


def key_forward_128(current: State, rnd: int) -> State:
    if rnd > 10 or rnd == 0:
        rnd ^= 8  # an out-of-range round number is folded into 1..10 (the spec)
    ck = _words(current)
    return _chain(ck[0] ^ _sub_rot(ck[3], rnd - 1), ck)


def key_forward_256(two_back: State, current: State, rnd: int) -> State:
    if rnd < 2 or rnd > 14:
        rnd ^= 8
    ck, back = _words(current), _words(two_back)
    word = _sub_rot(ck[3], 10) if rnd & 1 else _sub_rot(ck[3], rnd // 2 - 1)
    return _chain(back[0] ^ word, back)


# -- running one instruction ----------------------------------------------------------------------

def _group(v: VInsn, reg: int, g: int) -> State:
    w = [v.elem(reg, EGS * g + i, 4) for i in range(EGS)]
    return _state(w)


def _set_group(v: VInsn, reg: int, g: int, s: State) -> None:
    for i, word in enumerate(_words(s)):
        v.set_elem(reg, EGS * g + i, 4, word)


def exec_aes(v: VInsn) -> None:
    vt = v.require_vtype()
    vs = v.vs
    if (vt.sew != 32 or not v.vm or vs.vl % EGS or vs.vstart % EGS
            or vt.lmul_num * v.vlenb * 8 < 128 * vt.lmul_den):  # a group must fit
        raise IllegalVector
    nregs = v.group_regs()
    v.require_aligned(v.vd, nregs)
    f6, sel = v.insn >> 26, v.rs1
    if f6 == F6_VS:
        if v.vd <= v.rs2 < v.vd + nregs:  # .vs: vd may not overlap vs2
            raise IllegalVector
    else:
        v.require_aligned(v.rs2, nregs)
    groups = range(vs.vstart // EGS, vs.vl // EGS)
    if f6 in (F6_VV, F6_VS):
        round_fn = _ROUNDS.get(sel)
        if round_fn is None or (sel == 7 and f6 == F6_VV):
            raise IllegalVector
        key0 = _group(v, v.rs2, 0)
        for g in groups:
            key = key0 if f6 == F6_VS else _group(v, v.rs2, g)
            _set_group(v, v.vd, g, round_fn(_group(v, v.vd, g), key))
    elif f6 == F6_KF1:
        for g in groups:
            _set_group(v, v.vd, g, key_forward_128(_group(v, v.rs2, g), sel))
    else:
        for g in groups:
            _set_group(v, v.vd, g, key_forward_256(_group(v, v.vd, g), _group(v, v.rs2, g),
                                                   sel))


__all__ = ["OP_VE", "exec_aes", "is_zvkned", "key_forward_128", "key_forward_256"]
