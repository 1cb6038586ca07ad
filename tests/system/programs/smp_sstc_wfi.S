# Two harts in S-mode, each with its own Sstc timer (stimecmp) that re-arms itself
# from its handler, as Linux's tick does.  Hart 0 never waits: it polls the tick
# counts without touching a CSR, so only interrupts move it.  Hart 1 sleeps in WFI
# between its ticks with SIE clear (Linux's idle loop), then opens SIE to take the
# interrupt.  Hart 1's timer must wake it although the other hart has the host thread;
# a wake-up lost for good leaves hart 1 asleep and hart 0 polling until the timeout.
.include "common.inc"
.equ TICKS, 100
.equ DELTA, 300                 # 30 us at 10 MHz
.equ STCE_HI, 0x8000            # menvcfg.STCE is bit 63: 0x8000 << 48
.equ STIP, 0x20

.globl _start
_start:
    li t0, STCE_HI
    slli t0, t0, 48
    csrs 0x30a, t0              # menvcfg.STCE: Sstc on
    li t0, 7
    csrw mcounteren, t0         # S reads time (and writes stimecmp)
    li t0, STIP
    csrw mideleg, t0            # the S timer interrupt goes to S
    csrs mie, t0                # STIE
    PMP_OPEN
    csrr s1, mhartid
    la s2, counts
    slli t0, s1, 3
    add s2, s2, t0              # s2: this hart's tick count
    ENTER_S supervisor, strap

supervisor:
    call arm
    bnez s1, sleeper
poller:                         # hart 0: interrupts on, no CSR access in the loop
    csrsi sstatus, 2
    la t0, counts
    li t1, TICKS
1:  ld t2, 0(t0)
    ld t3, 8(t0)
    blt t2, t1, 1b
    blt t3, t1, 1b
    csrci sstatus, 2
    PASS

sleeper:                        # hart 1: WFI with SIE clear, then take the interrupt
1:  wfi
    csrsi sstatus, 2            # the pending tick is taken here
    csrci sstatus, 2
    j 1b

arm:                            # stimecmp = time + DELTA
    csrr t0, time
    addi t0, t0, DELTA
    csrw 0x14d, t0
    ret

.align 2
strap:
    csrr t5, scause
    bgez t5, bad_trap
    ld t5, 0(s2)
    addi t5, t5, 1
    sd t5, 0(s2)
    li t5, -1
    csrw 0x14d, t5              # Linux first stops the timer, then programs the next
    csrr t5, time
    addi t5, t5, DELTA
    csrw 0x14d, t5
    sret
bad_trap:
    li a0, (1 << 16) | 0x3333
    j finish

FINISH_ROUTINE

.align 3
counts:
    .dword 0, 0
