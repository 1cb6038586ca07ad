# Zihpm counters and Sscofpmf (run with -cpu rv64,sscofpmf=true).  STRICT=1 also
# checks what QEMU 7.2 does not do (pemu only): an inhibited counter stands still,
# and SINH stops a counter in S-mode.
#   1      mhpmcounter3 without an event keeps what was written
#   2      mhpmcounter19 is illegal (16 counters: pmu-num)
#   3      mhpmevent3 keeps all 64 bits
#   4      with event 1 (cycles) mhpmcounter3 advances
#   5-7    it wraps: OF is set in mhpmevent3 and LCOFI is pending in mip
#   8      S-mode sees OF in scountovf where mcounteren allows it
#   9      hpmcounter3 from S without mcounteren is illegal
#   10-11  LCOFI delegated to S is taken there (scause 13 | interrupt bit)
#   12     (STRICT) mcountinhibit stops the counter
#   13     (STRICT) SINH: the counter does not advance in S-mode
.include "common.inc"
.option norelax
.ifndef STRICT
.equ STRICT, 0
.endif
.equ LCOFIP, (1 << 13)
.equ OF, (1 << 63)
.equ SINH, (1 << 61)

.macro RUN_S target
    la s11, 8f
    li t0, (3 << 11)
    csrc mstatus, t0
    li t0, (1 << 11)
    csrs mstatus, t0
    la t0, \target
    csrw mepc, t0
    mret
8:
.endm

.macro WAIT_LCOFIP          # spin (bounded) until mip.LCOFIP
    li t1, 20000000
7:  csrr t0, mip
    li t2, LCOFIP
    and t0, t0, t2
    bnez t0, 6f
    addi t1, t1, -1
    bnez t1, 7b
6:
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    la t0, strap
    csrw stvec, t0
    PMP_OPEN
    li s5, 0
    csrw mhpmevent3, zero
    li t0, 12345                # 1
    csrw mhpmcounter3, t0
    csrr t1, mhpmcounter3
    EXPECT t1, 12345, 1
    csrr t1, 0xB13              # 2: mhpmcounter19
    EXPECT s5, 2, 2
    li t0, -1                   # 3
    csrw mhpmevent3, t0
    csrr t1, mhpmevent3
    EXPECT t1, -1, 3
    li t0, 1                    # 4: cycles
    csrw mhpmevent3, t0
    csrw mhpmcounter3, zero
    csrr s1, mhpmcounter3
    li t1, 100000
1:  addi t1, t1, -1
    bnez t1, 1b
    csrr s2, mhpmcounter3
    bltu s1, s2, 1f
    li a0, (4 << 16) | 0x3333
    j finish
1:  li t0, -1000                # 5-7: overflow after 1000 counts
    csrw mhpmcounter3, t0
    WAIT_LCOFIP
    csrr t0, mhpmevent3
    srli t0, t0, 63
    EXPECT t0, 1, 5
    csrr t0, mip
    li t1, LCOFIP
    and t0, t0, t1
    EXPECT t0, LCOFIP, 6
    csrr t0, mhpmcounter3       # wrapped: small again
    li t1, 0x8000000000000000
    bltu t0, t1, 1f
    li a0, (7 << 16) | 0x3333
    j finish
1:  li t0, 8                    # 8: scountovf bit 3 in S with mcounteren.HPM3
    csrw mcounteren, t0
    RUN_S s_scountovf
    EXPECT s7, 8, 8
    csrw mcounteren, zero       # 9
    li s5, 0
    RUN_S s_hpm_read
    EXPECT s5, 2, 9
    li t0, LCOFIP               # 10-11: clear LCOFIP and OF, delegate, re-arm
    csrc mip, t0
    li t0, 1
    csrw mhpmevent3, t0
    li t0, LCOFIP
    csrw mideleg, t0
    csrw mie, t0
    li t0, -2000
    csrw mhpmcounter3, t0
    li s6, 0
    RUN_S s_wait_lcofi
    EXPECT s8, 1, 10            # the S handler ran once
    li t0, 0x800000000000000d
    EXPECT_EQ s6, t0, 11
    csrw mie, zero
.if STRICT
    li t0, 8                    # 12: inhibit counter 3
    csrw mcountinhibit, t0
    csrr s1, mhpmcounter3
    li t1, 100000
1:  addi t1, t1, -1
    bnez t1, 1b
    csrr s2, mhpmcounter3
    EXPECT_EQ s1, s2, 12
    csrw mcountinhibit, zero
    li t0, 1 | SINH             # 13: counts in M, not in S
    csrw mhpmevent3, t0
    li t0, 8
    csrw mcounteren, t0
    RUN_S s_two_reads
    EXPECT_EQ s1, s2, 13
.endif
    PASS

s_scountovf:
    csrr s7, 0xDA0
    ecall

s_hpm_read:
    csrr t0, hpmcounter3
    ecall

s_wait_lcofi:
    li s8, 0
    li t0, 2                    # sstatus.SIE
    csrs sstatus, t0
    li t1, 20000000
1:  bnez s8, 2f
    addi t1, t1, -1
    bnez t1, 1b
2:  csrc sstatus, t0
    ecall

s_two_reads:
    csrr s1, hpmcounter3
    li t1, 100000
1:  addi t1, t1, -1
    bnez t1, 1b
    csrr s2, hpmcounter3
    ecall

.align 2
strap:                          # LCOFI: record scause, stop it, return
    csrr s6, scause
    addi s8, s8, 1
    li t3, LCOFIP
    csrc sie, t3
    csrc sip, t3
    sret

.align 2
mtrap:                          # ecall from S: back to the M program; else skip
    csrr t3, mcause
    li t4, 9
    bne t3, t4, 1f
    jr s11
1:  mv s5, t3
    csrr t3, mepc
    addi t3, t3, 4
    csrw mepc, t3
    mret

FINISH_ROUTINE
