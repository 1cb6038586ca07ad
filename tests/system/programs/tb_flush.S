# More distinct blocks than the translation cache holds (run with -accel tcg,tb-size=1,
# which keeps 512 blocks): the cache is dropped whole, again and again, while the
# program is running.  Every block must still run.  Before the fix, the native backend
# dropped the block that was being translated together with the rest, and the hart
# asked for it again forever (the Debian guest's boot hang).
.include "common.inc"
.ifndef BLOCKS
.equ BLOCKS, 3000
.endif
.equ PASSES, 3

.globl _start
_start:
    li s0, 0
    li s1, PASSES
pass:
    .rept BLOCKS
    addi s0, s0, 1
    j 1f                    # ends the block: each repetition is a block of its own
1:
    .endr
    addi s1, s1, -1
    bnez s1, pass
    li t0, BLOCKS * PASSES
    EXPECT_EQ s0, t0, 1
    PASS

FINISH_ROUTINE
