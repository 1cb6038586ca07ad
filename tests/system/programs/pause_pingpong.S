# Two harts hand a turn back and forth ROUNDS times through a shared word, each
# waiting for its turn in a spin loop with Zihintpause's pause (Linux's cpu_relax).
# Where the harts take turns on one host thread (-accel tcg,thread=single), the hart
# waited for runs only when the spinning one's turn ends: without pause ending it,
# every hand-over costs a whole quantum (5 ms: ROUNDS x 2 x 5 ms), with it a few
# microseconds.  Hart 0 checks the count and finishes; check 1: the count is wrong.
.include "common.inc"
.ifndef ROUNDS
.equ ROUNDS, 2000
.endif

.globl _start
_start:
    csrr s0, mhartid            # this hart's parity: it moves the turn from s0 to 1 - s0
    la s1, turn
    li s2, 2 * ROUNDS
1:  ld t0, 0(s1)
    bgeu t0, s2, 3f             # every round played
    andi t1, t0, 1
    beq t1, s0, 2f
    .4byte 0x0100000f           # pause: not this hart's turn yet
    j 1b
2:  addi t0, t0, 1              # this hart's turn: hand it over
    sd t0, 0(s1)
    j 1b
3:  bnez s0, 4f
    ld t0, 0(s1)
    li t1, 2 * ROUNDS
    EXPECT_EQ t0, t1, 1
    PASS
4:  wfi                         # hart 1: done
    j 4b

FINISH_ROUTINE

.data
.balign 8
turn: .dword 0
