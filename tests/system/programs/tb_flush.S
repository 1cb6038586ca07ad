# More distinct blocks than the translation cache holds (run with -accel tcg,tb-size=1,
# which keeps 512 blocks): the cache is dropped whole, again and again, while the
# program is running.  Every block must still run.  Before the fix, the native backend
# dropped the block that was being translated together with the rest, and the hart
# asked for it again forever (the Debian guest's boot hang).
.include "common.inc"
.ifndef BLOCKS
.equ BLOCKS, 3000
.endif
.ifndef PASSES
.equ PASSES, 3
.endif

.equ CLINT_MTIME, 0x200bff8

.globl _start
_start:
    csrr t0, mhartid
    bnez t0, reader         # harts other than 0 (-smp > 1): see below
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

# Harts other than 0 (tests/system/test_mttcg.py, one host thread per hart) read the
# ACLINT's mtime in a loop while hart 0 makes the cache drop: an MMIO read is a helper
# call out of the block and back into it, and under thread=multi the helper waits for
# the big lock, which hart 0 holds while it resets the code buffer.  A reset that did
# not wait for this hart would write new blocks over the one it returns to.
reader:
    li s2, CLINT_MTIME
    ld s3, 0(s2)
    li s4, 0
1:
    ld t1, 0(s2)
    bltu t1, s3, 2f         # mtime never goes backwards
    mv s3, t1
    addi s4, s4, 1
    addi t2, s4, -1
    addi t2, t2, 1
    EXPECT_EQ t2, s4, 2     # a block resumed at the wrong place would not keep this
    j 1b
2:
    li a0, (3 << 16) | 0x3333
    j finish

