# Counts boots in RAM that the images do not cover (it survives a reset), prints the
# count, and asks for a reset through the finisher until it has booted twice.
.include "common.inc"
.globl _start
_start:
    li s0, 0x80100000
    lw t0, 0(s0)
    addi t0, t0, 1
    sw t0, 0(s0)
    li t1, UART
    addi t2, t0, '0'
    sb t2, 0(t1)
    li t3, 2
    bge t0, t3, 1f
    li t0, FINISHER
    li t1, 0x7777               # reset
    sw t1, 0(t0)
2:  j 2b
1:  PASS

FINISH_ROUTINE
