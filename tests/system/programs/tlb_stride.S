# Two pages 4 MiB apart, alternately loaded and stored, ROUNDS times (M-mode, Bare:
# the accesses still go through the softmmu TLB).  Their page numbers are equal mod
# 1024, the entries of a direct-mapped 1024-entry TLB: each access would evict the
# other page's entry (tests/system/test_tlb_conflict.py counts the refills).
# The sum of the loaded values is checked, so the loop does real work.
.include "common.inc"
# --defsym STRIDE=4096 ROUNDS=... makes it the hit-path benchmark (docs/PERFORMANCE.md).
.ifndef STRIDE
.equ STRIDE, 0x400000           # 4 MiB
.endif
.ifndef ROUNDS
.equ ROUNDS, 20000
.endif
.equ PAGE_A, 0x80200000
.equ PAGE_B, PAGE_A + STRIDE

.globl _start
_start:
    li s0, PAGE_A
    li s1, PAGE_B
    sd zero, 0(s0)
    sd zero, 0(s1)
    li s2, ROUNDS
1:  ld t0, 0(s0)
    addi t0, t0, 1
    sd t0, 0(s0)
    ld t1, 0(s1)
    addi t1, t1, 2
    sd t1, 0(s1)
    addi s2, s2, -1
    bnez s2, 1b
    ld t0, 0(s0)
    EXPECT t0, ROUNDS, 1
    ld t1, 0(s1)
    EXPECT t1, 2*ROUNDS, 2
    PASS
    FINISH_ROUTINE
