"""RISC-V fflags bits and rounding-mode numbers (unprivileged ISA, F extension)."""

NX = 1  # inexact
UF = 2  # underflow
OF = 4  # overflow
DZ = 8  # divide by zero
NV = 16  # invalid operation

RNE = 0  # round to nearest, ties to even
RTZ = 1  # round towards zero
RDN = 2  # round down (towards -inf)
RUP = 3  # round up (towards +inf)
RMM = 4  # round to nearest, ties to max magnitude
