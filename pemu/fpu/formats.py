"""Parameters of the IEEE-754 binary interchange formats used by RISC-V F and D.

Everything in pemu.fpu works on raw bit patterns held in Python ints; a
FloatFormat says where the sign, exponent and fraction live in those bits and
what the format's special encodings are.  All derived constants are stored as
plain fields (not properties) because the slow paths read them on every call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FloatFormat:
    name: str
    exp_bits: int
    frac_bits: int
    width: int
    precision: int  # significand bits including the hidden one
    bias: int
    emin: int  # unbiased exponent of the smallest normal number
    emax: int
    qmin: int  # exponent of a subnormal's least significant bit
    exp_max_field: int
    frac_mask: int
    hidden_bit: int
    sign_bit: int
    mag_mask: int
    inf_bits: int
    max_finite: int
    quiet_bit: int
    canonical_nan: int

    @classmethod
    def build(cls, name: str, exp_bits: int, frac_bits: int) -> FloatFormat:
        width = 1 + exp_bits + frac_bits
        bias = (1 << (exp_bits - 1)) - 1
        exp_max_field = (1 << exp_bits) - 1
        inf_bits = exp_max_field << frac_bits
        quiet_bit = 1 << (frac_bits - 1)
        sign_bit = 1 << (width - 1)
        return cls(
            name=name,
            exp_bits=exp_bits,
            frac_bits=frac_bits,
            width=width,
            precision=frac_bits + 1,
            bias=bias,
            emin=1 - bias,
            emax=bias,
            qmin=1 - bias - frac_bits,
            exp_max_field=exp_max_field,
            frac_mask=(1 << frac_bits) - 1,
            hidden_bit=1 << frac_bits,
            sign_bit=sign_bit,
            mag_mask=sign_bit - 1,
            inf_bits=inf_bits,
            max_finite=inf_bits - 1,
            quiet_bit=quiet_bit,
            canonical_nan=inf_bits | quiet_bit,
        )

    def is_nan(self, x: int) -> bool:
        return (x & self.mag_mask) > self.inf_bits

    def is_snan(self, x: int) -> bool:
        return self.is_nan(x) and not x & self.quiet_bit

    def unpack_finite(self, x: int) -> tuple[int, int]:
        """(m, e) with |x| == m * 2**e, for a finite nonzero x (sign ignored)."""
        exp_field = (x >> self.frac_bits) & self.exp_max_field
        frac = x & self.frac_mask
        if exp_field == 0:
            return frac, self.qmin
        return frac | self.hidden_bit, exp_field - self.bias - self.frac_bits


F32 = FloatFormat.build("f32", 8, 23)
F64 = FloatFormat.build("f64", 11, 52)
F16 = FloatFormat.build("f16", 5, 10)  # IEEE binary16 (RISC-V Zfh)
