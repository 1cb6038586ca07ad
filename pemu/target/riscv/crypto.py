"""Scalar cryptography (Zknd, Zkne, Zknh, Zksed, Zksh) for RV64, as pure functions.

The AES and SM4 S-boxes are computed at import from their algebraic definitions (an
inverse in GF(2^8) and an affine map), not copied as tables.  Every function takes and
returns 64-bit register values; the 32-bit ones (SHA-256, SM3, SM4) sign-extend their
result as RV64 writes it.  insn_int.py wraps them as pure helpers.
"""

from __future__ import annotations

M32 = 0xFFFF_FFFF
M64 = (1 << 64) - 1


def _gf_mul(a: int, b: int, poly: int) -> int:
    """a * b in GF(2^8) modulo ``poly`` (with its x^8 bit)."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        b >>= 1
        a <<= 1
        if a & 0x100:
            a ^= poly
    return out


def _gf_inverses(poly: int) -> list[int]:
    """x^-1 = x^254 in GF(2^8) (x^255 = 1 for every non-zero x): fifteen products per
    value by squaring, where a search for the inverse took 128 on average (a tenth of a
    second at every start of pemu)."""
    inv = [0] * 256  # 0 maps to 0 by convention
    for x in range(1, 256):
        power, square, exp = 1, x, 254
        while exp:
            if exp & 1:
                power = _gf_mul(power, square, poly)
            square = _gf_mul(square, square, poly)
            exp >>= 1
        inv[x] = power
    return inv


def _parity(v: int) -> int:
    return bin(v).count("1") & 1


def _aes_sbox() -> tuple[list[int], list[int]]:
    """FIPS-197: the inverse modulo x^8+x^4+x^3+x+1, then b ^ rotl(b,1..4) ^ 0x63."""
    inv = _gf_inverses(0x11B)
    fwd = []
    for x in range(256):
        b = inv[x]
        s = b
        for shift in range(1, 5):
            s ^= ((b << shift) | (b >> (8 - shift))) & 0xFF
        fwd.append(s ^ 0x63)
    back = [0] * 256
    for x, s in enumerate(fwd):
        back[s] = x
    return fwd, back


def _sm4_sbox() -> list[int]:
    """GB/T 32907: S(x) = A(I(A(x) + C)) + C over GF(2^8) modulo
    x^8+x^7+x^6+x^5+x^4+x^2+1, with A the circulant matrix of row 0xD3 and C = 0xD3."""
    inv = _gf_inverses(0x1F5)

    def affine(x: int) -> int:
        out = 0
        for i in range(8):
            row = ((0xD3 >> i) | (0xD3 << (8 - i))) & 0xFF
            out |= _parity(x & row) << (7 - i)
        return out ^ 0xD3
    return [affine(inv[affine(x)]) for x in range(256)]


AES_SBOX, AES_INV_SBOX = _aes_sbox()
SM4_SBOX = _sm4_sbox()
_RCON = (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


def _sext32(v: int) -> int:
    v &= M32
    return v | (M64 ^ M32) if v >> 31 else v


def _ror32(v: int, n: int) -> int:
    return ((v >> n) | (v << (32 - n))) & M32


def _rol32(v: int, n: int) -> int:
    return _ror32(v, (32 - n) % 32)


def _ror64(v: int, n: int) -> int:
    return ((v >> n) | (v << (64 - n))) & M64


def _bytes(v: int, n: int) -> list[int]:
    return [(v >> (8 * i)) & 0xFF for i in range(n)]


def _join(values: list[int], width: int = 8) -> int:
    return sum(v << (width * i) for i, v in enumerate(values))


# -- AES (Zkne, Zknd) ---------------------------------------------------------------------
# The 128-bit state is rs2:rs1, byte k of it is row k % 4 of column k // 4; an
# instruction yields the low half (columns 0 and 1) of the round's result.

def _shift_rows(rs1: int, rs2: int, direction: int) -> list[int]:
    state = _bytes(rs1, 8) + _bytes(rs2, 8)
    return [state[k % 4 + 4 * ((k // 4 + direction * (k % 4)) % 4)] for k in range(8)]


def _xt(b: int, factor: int) -> int:
    return _gf_mul(b, factor, 0x11B)


def _mix_column(word: int, coeffs: tuple[int, int, int, int]) -> int:
    b = _bytes(word, 4)
    return _join([_xt(b[0], coeffs[-i % 4]) ^ _xt(b[1], coeffs[(1 - i) % 4])
                  ^ _xt(b[2], coeffs[(2 - i) % 4]) ^ _xt(b[3], coeffs[(3 - i) % 4])
                  for i in range(4)])


_MIX_FWD = (2, 3, 1, 1)
_MIX_INV = (14, 11, 13, 9)


def _mix(v: int, coeffs: tuple[int, int, int, int]) -> int:
    return _mix_column(v & M32, coeffs) | _mix_column(v >> 32, coeffs) << 32


def aes64es(rs1: int, rs2: int) -> int:
    return _join([AES_SBOX[b] for b in _shift_rows(rs1, rs2, 1)])


def aes64esm(rs1: int, rs2: int) -> int:
    return _mix(aes64es(rs1, rs2), _MIX_FWD)


def aes64ds(rs1: int, rs2: int) -> int:
    return _join([AES_INV_SBOX[b] for b in _shift_rows(rs1, rs2, -1)])


def aes64dsm(rs1: int, rs2: int) -> int:
    return _mix(aes64ds(rs1, rs2), _MIX_INV)


def aes64im(rs1: int, _unused: int = 0) -> int:
    return _mix(rs1, _MIX_INV)


def aes64ks1i(rs1: int, imm: int) -> int:
    """``imm``: the OP-IMM shift field, whose low 4 bits are rnum (0..10)."""
    rnum = imm & 0xF
    word = rs1 >> 32
    if rnum != 10:
        word = _ror32(word, 8)
    word = _join([AES_SBOX[b] for b in _bytes(word, 4)])
    if rnum < 10:
        word ^= _RCON[rnum]
    return word | word << 32


def aes64ks2(rs1: int, rs2: int) -> int:
    w0 = (rs1 >> 32) ^ (rs2 & M32)
    w1 = w0 ^ (rs2 >> 32)
    return w0 | w1 << 32


# -- SHA-2 (Zknh) and SM3 (Zksh) --------------------------------------------------------------

def _sha256(r1: int, r2: int, shift: int, rotate_last: bool) -> object:
    def op(rs1: int, _unused: int = 0) -> int:
        x = rs1 & M32
        last = _ror32(x, shift) if rotate_last else x >> shift
        return _sext32(_ror32(x, r1) ^ _ror32(x, r2) ^ last)
    return op


def _sha512(r1: int, r2: int, shift: int, rotate_last: bool) -> object:
    def op(rs1: int, _unused: int = 0) -> int:
        last = _ror64(rs1, shift) if rotate_last else rs1 >> shift
        return _ror64(rs1, r1) ^ _ror64(rs1, r2) ^ last
    return op


def _sm3(r1: int, r2: int) -> object:
    def op(rs1: int, _unused: int = 0) -> int:
        x = rs1 & M32
        return _sext32(x ^ _rol32(x, r1) ^ _rol32(x, r2))
    return op


sha256sig0 = _sha256(7, 18, 3, False)
sha256sig1 = _sha256(17, 19, 10, False)
sha256sum0 = _sha256(2, 13, 22, True)
sha256sum1 = _sha256(6, 11, 25, True)
sha512sig0 = _sha512(1, 8, 7, False)
sha512sig1 = _sha512(19, 61, 6, False)
sha512sum0 = _sha512(28, 34, 39, True)
sha512sum1 = _sha512(14, 18, 41, True)
sm3p0 = _sm3(9, 17)
sm3p1 = _sm3(15, 23)


# -- SM4 (Zksed) ------------------------------------------------------------------------------

def _sm4(linear: object) -> object:
    def make(bs: int) -> object:
        def op(rs1: int, rs2: int) -> int:
            x = SM4_SBOX[(rs2 >> (8 * bs)) & 0xFF]
            y = linear(x)  # type: ignore[operator]
            return _sext32(_rol32(y & M32, 8 * bs) ^ rs1)
        return op
    return make


sm4ed = _sm4(lambda x: x ^ (x << 8) ^ (x << 2) ^ (x << 18) ^ ((x & 0x3F) << 26)
             ^ ((x & 0xC0) << 10))
sm4ks = _sm4(lambda x: x ^ ((x & 0x07) << 29) ^ ((x & 0xFE) << 7) ^ ((x & 0x01) << 23)
             ^ ((x & 0xF8) << 13))
