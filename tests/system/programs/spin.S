# Prints READY, then runs forever (for the signal tests).
.globl _start
_start:
    li t0, 0x10000000
    li t1, 'R'
    sb t1, 0(t0)
    li t1, '\n'
    sb t1, 0(t0)
1:  addi t2, t2, 1
    j 1b
