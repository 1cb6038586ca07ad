# Two harts: hart 1 spins, so the harts share the host thread in quanta; hart 0 takes
# TICKS machine timer interrupts, each handler arming the next one shortly after.
# Every interrupt must be delivered: one lost is never re-armed, and hart 0 then spins
# forever.  (pemu lost an interrupt whose exit request came with the end of the hart's
# quantum: it cleared the request and never looked at the pending interrupt again.)
.include "common.inc"
.equ CLINT_MTIMECMP, 0x2004000
.equ CLINT_MTIME, 0x200bff8
.ifndef TICKS
.equ TICKS, 400
.endif
.equ DELTA, 500                 # 50 us at 10 MHz

.globl _start
_start:
    csrr t0, mhartid
    bnez t0, other_hart
    la t0, mtrap
    csrw mtvec, t0
    li s0, 0                    # interrupts taken
    call arm
    li t0, 0x80
    csrs mie, t0                # MTIE
    csrsi mstatus, 8            # MIE
wait:
    li t0, TICKS
    blt s0, t0, wait            # no CSR access in the loop: only interrupts end it
    csrci mstatus, 8
    PASS

arm:                            # mtimecmp[0] = mtime + DELTA
    li t0, CLINT_MTIME
    ld t1, 0(t0)
    li t2, DELTA
    add t1, t1, t2
    li t0, CLINT_MTIMECMP
    sd t1, 0(t0)
    ret

.align 2
mtrap:
    csrr t3, mcause
    bgez t3, bad_trap
    addi s0, s0, 1
    mv t4, ra
    call arm
    mv ra, t4
    mret
bad_trap:
    li a0, (1 << 16) | 0x3333
    j finish

other_hart:
1:  addi t5, t5, 1
    j 1b

FINISH_ROUTINE
