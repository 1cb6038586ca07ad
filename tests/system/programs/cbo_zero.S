# Zicboz's cbo.zero in S- and U-mode under Sv39: the inline path (the envcfgs allow it,
# the block is writable RAM) and each way it falls back and traps.  One subroutine,
# zero_it, runs every cbo.zero, so the same translated block meets menvcfg.CBZE on,
# off and on again: a block kept across the change would zero or trap wrongly.
# Faults go to M, which records mcause/mtval in s1/s2 and skips the instruction; an
# ecall from S writes a0 to menvcfg, one from U returns to S at s3.
.include "common.inc"
.option arch, +zicboz
.option norvc
.equ RWXAD, 0xCF                     # V R W X A D
.equ RA_ONLY, 0x43                   # V R A: read-only
.equ URWXAD, 0xDF                    # V R W X U A D
.equ CBZE, 1 << 7
.equ RO_ALIAS, 0x40000000            # VA 0xC0000000: RAM again, read-only
.equ U_ALIAS, 0x80000000             # VA 0x100000000: RAM again, for U-mode
.equ CBO_ZERO_A3, 0x0046A00F         # cbo.zero (a3): mtval of its illegal instruction

.macro GIGAPAGE index, pa, flags
    la t0, l2 + \index * 8
    li t1, (\pa >> 12) << 10 | \flags
    sd t1, 0(t0)
.endm

# cbo_block: 24 doublewords of 0x77; a3 points into the second 64-byte block
.macro REFILL
    la t0, cbo_block
    li t1, 0x77
    li t2, 24
8:  sd t1, 0(t0)
    addi t0, t0, 8
    addi t2, t2, -1
    bnez t2, 8b
.endm

# the second block holds \value in all 8 doublewords, its neighbours 0x77
.macro CHECK_BLOCK value, n
    la a4, cbo_block
    ld t1, 56(a4)
    EXPECT t1, 0x77, \n
    ld t1, 128(a4)
    EXPECT t1, 0x77, \n
    li t2, 8
    addi a4, a4, 64
8:  ld t1, 0(a4)
    EXPECT t1, \value, \n
    addi a4, a4, 8
    addi t2, t2, -1
    bnez t2, 8b
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    li t0, -1
    csrw 0x30c, t0                   # mstateen0: S may use senvcfg (with Smstateen)
    GIGAPAGE 0, 0, RWXAD             # devices, and nothing at physical 0
    GIGAPAGE 2, 0x80000000, RWXAD
    GIGAPAGE 3, 0x80000000, RA_ONLY
    GIGAPAGE 4, 0x80000000, URWXAD
    la t0, l2
    srli t0, t0, 12
    li t1, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    ENTER_S s_main, mtrap

s_main:
    la a3, cbo_block + 72
    # 1: enabled: cbo.zero clears exactly the aligned block around a3
    li a0, CBZE
    ecall
    REFILL
    li s1, 0
    call zero_it
    EXPECT s1, 0, 1
    CHECK_BLOCK 0, 2
    # 3-5: menvcfg.CBZE off: the same code raises an illegal instruction, writes nothing
    li a0, 0
    ecall
    REFILL
    call zero_it
    EXPECT s1, 2, 3
    EXPECT s2, CBO_ZERO_A3, 4
    CHECK_BLOCK 0x77, 5
    # 6-7: on again: it zeroes again
    li a0, CBZE
    ecall
    li s1, 0
    call zero_it
    EXPECT s1, 0, 6
    CHECK_BLOCK 0, 7
    # 8-10: a read-only page: a store page fault at the block's address, nothing written
    REFILL
    li t0, RO_ALIAS
    add a3, a3, t0
    call zero_it
    EXPECT s1, 15, 8
    andi t0, a3, -64
    EXPECT_EQ s2, t0, 9
    CHECK_BLOCK 0x77, 10
    # 11-12: no memory behind the address: a store access fault
    li s1, 0
    li a3, 8
    call zero_it
    EXPECT s1, 7, 11
    EXPECT s2, 0, 12
    # 13-14: U-mode with senvcfg.CBZE clear: illegal, nothing written
    li t0, CBZE
    csrc senvcfg, t0
    la a3, cbo_block + 72
    li t0, U_ALIAS
    add a3, a3, t0
    li s1, 0
    la s3, 1f
    j enter_u
1:  EXPECT s1, 2, 13
    CHECK_BLOCK 0x77, 14
    # 15-16: U-mode with senvcfg.CBZE set: it zeroes
    li t0, CBZE
    csrs senvcfg, t0
    li s1, 0
    la s3, 1f
    j enter_u
1:  EXPECT s1, 0, 15
    CHECK_BLOCK 0, 16
    # 17: U-mode with senvcfg set but menvcfg clear: illegal
    li a0, 0
    ecall
    REFILL
    la s3, 1f
    j enter_u
1:  EXPECT s1, 2, 17
    CHECK_BLOCK 0x77, 18
    PASS

enter_u:                             # run u_code (at its U alias), back at s3
    la t0, u_code
    li t1, U_ALIAS
    add t0, t0, t1
    csrw sepc, t0
    li t0, 1 << 8                    # SPP = U
    csrc sstatus, t0
    sret

zero_it:
    cbo.zero (a3)
    ret

u_code:
    cbo.zero (a3)
    ecall

.align 2
mtrap:
    csrr t0, mcause
    li t1, 9                         # ecall from S: menvcfg = a0
    bne t0, t1, 1f
    csrw menvcfg, a0
    j 2f
1:  li t1, 8                         # ecall from U: back to S-mode at s3
    bne t0, t1, 3f
    MRET_TO_S s3
3:  mv s1, t0
    csrr s2, mtval
2:  MRET_PAST_INSN

FINISH_ROUTINE

.data
.balign 4096
cbo_block: .fill 24, 8, 0x77
.balign 4096
l2: .zero 4096
