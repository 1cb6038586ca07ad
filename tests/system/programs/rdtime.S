# The time CSR as translated code reads it inline (the clock slots, no helper) and
# where it must take the helper (a counter-enable bit clear: illegal instruction).
# Checks:
#   1    M-mode: ROUNDS reads in a tight loop never go backwards
#   2-3  time agrees with the ACLINT's mtime (MMIO): t1 <= mtime <= t2
#   4-5  rate: spinning on time for 20 ms takes 20 ms..2 s of the goldfish RTC's clock
#   6    after a write of mtime, time follows it (the offset slot is kept current)
#   7    S-mode with mcounteren.TM clear: rdtime traps (illegal instruction)
#   8-9  S-mode with TM set (an ecall sets it): rdtime works, monotonic over ROUNDS
#   10   U-mode with scounteren.TM clear: rdtime traps
#   11-12 U-mode with TM set: rdtime works and agrees with mtime
.include "common.inc"
.option norelax
.equ MTIME, 0x200BFF8
.equ RTC, 0x101000
.ifndef ROUNDS
.equ ROUNDS, 20000
.endif

.macro TIME_LOOP n              # ROUNDS reads of time, each >= the one before
    li s0, ROUNDS
    rdtime a0
1:  rdtime a1
    sltu t0, a1, a0
    EXPECT t0, 0, \n
    mv a0, a1
    addi s0, s0, -1
    bnez s0, 1b
.endm

.macro AGREES_WITH_MTIME n1, n2 # time, mtime, time in order
    li s1, MTIME
    rdtime a0
    ld a1, 0(s1)
    rdtime a2
    sltu t0, a1, a0
    EXPECT t0, 0, \n1
    sltu t0, a2, a1
    EXPECT t0, 0, \n2
.endm

.macro READ_RTC reg             # the RTC in ns (reading the low word latches the high)
    li t1, RTC
    lwu \reg, 0(t1)
    lwu t2, 4(t1)
    slli t2, t2, 32
    or \reg, \reg, t2
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    csrw mcounteren, zero
    csrw scounteren, zero
    li s6, 0                    # illegal-instruction traps taken
    TIME_LOOP 1
    AGREES_WITH_MTIME 2, 3
    READ_RTC s2                 # 4-5: 200000 ticks of 10 MHz = 20 ms
    rdtime a0
    li t0, 200000
    add a3, a0, t0
1:  rdtime a1
    bltu a1, a3, 1b
    READ_RTC s3
    sub s3, s3, s2
    li t0, 20000000
    sltu t1, s3, t0
    EXPECT t1, 0, 4
    li t0, 2000000000
    sltu t1, s3, t0
    EXPECT t1, 1, 5
    li s1, MTIME                # 6: mtime := 2**40
    li t0, 1 << 40
    sd t0, 0(s1)
    rdtime a0
    sub a0, a0, t0
    li t0, 10000000             # less than 1 s later
    sltu t1, a0, t0
    EXPECT t1, 1, 6
    ENTER_S s_code, 0

s_code:
    rdtime a0                   # 7: traps, the handler counts it
    EXPECT s6, 1, 7
    ecall                       # the handler sets mcounteren.TM
    TIME_LOOP 8
    AGREES_WITH_MTIME 9, 9
    la t0, u_code               # to U-mode (SPP = 0)
    csrw sepc, t0
    li t0, 1 << 8
    csrc sstatus, t0
    sret

u_code:
    rdtime a0                   # 10: traps
    EXPECT s6, 2, 10
    ecall                       # the handler sets scounteren.TM
    AGREES_WITH_MTIME 11, 12
    EXPECT s6, 2, 12
    PASS

mtrap:                          # illegal instruction: count; ecall from S/U: enable TM
    csrr t5, mcause
    li t4, 2
    beq t5, t4, 1f
    li t4, 9
    beq t5, t4, 2f
    li t4, 8
    beq t5, t4, 3f
    li a0, (99 << 16) | 0x3333
    j finish
1:  addi s6, s6, 1
    j 4f
2:  li t4, 2
    csrs mcounteren, t4
    j 4f
3:  li t4, 2
    csrs scounteren, t4
4:  csrr t4, mepc
    addi t4, t4, 4
    csrw mepc, t4
    mret

FINISH_ROUTINE
