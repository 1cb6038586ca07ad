# A fixed sequence of traps for the -d int log, the same under pemu and QEMU: an illegal
# instruction, ecalls from M, U and S, and a machine timer interrupt whose epc is fixed
# (the timer is already pending when mstatus.MIE is set).
.include "common.inc"
.equ CLINT_MTIMECMP, 0x2004000
.equ CLINT_MTIME, 0x200bff8

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    .word 0xc0001073            # csrrw x0, cycle, x0: illegal_instruction, tval = the bits
    ecall                       # machine_ecall
    la s3, from_user            # where mtrap resumes after an ecall from U or S
    li t0, (3 << 11)
    csrc mstatus, t0            # MPP = U
    la t0, user
    csrw mepc, t0
    mret
user:
    ecall                       # user_ecall
from_user:
    la s3, from_super
    ENTER_S super, mtrap
super:
    ecall                       # supervisor_ecall (not delegated)
from_super:
    csrci mstatus, 8            # MIE off (the mrets above set it from MPIE)
    li t0, CLINT_MTIME
    ld t1, 0(t0)
    addi t1, t1, 50
    li t0, CLINT_MTIMECMP
    sd t1, 0(t0)
    li t0, 0x80
    csrs mie, t0                # MTIE; mstatus.MIE is still clear
    wfi                         # returns once the timer is pending
1:  csrr t0, mip
    andi t0, t0, 0x80
    beqz t0, 1b
    csrsi mstatus, 8            # MIE: the interrupt is taken right after this
    nop
    EXPECT s1, 0x8000000000000007, 1
    PASS

.align 2
mtrap:                          # every trap returns to M-mode
    csrr s1, mcause
    li t0, (3 << 11)
    csrs mstatus, t0            # MPP = M
    bltz s1, interrupt
    li t0, 8
    beq s1, t0, from_lower
    li t0, 9
    beq s1, t0, from_lower
    csrr t0, mepc               # M-mode exceptions: skip the 4-byte instruction
    addi t0, t0, 4
    csrw mepc, t0
    mret
from_lower:                     # ecall from U or S: resume in M at s3
    csrw mepc, s3
    mret
interrupt:
    li t0, 0x80
    csrc mie, t0
    mret

FINISH_ROUTINE
