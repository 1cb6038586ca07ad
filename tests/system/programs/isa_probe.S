# Runs the one instruction word INSN (--defsym) in M-mode: the test finisher reports
# pass when it executes, and fail with code mcause + 1 when it traps (3: illegal).
.globl _start
_start:
    la t0, trapped
    csrw mtvec, t0
    li a1, 0x1234
    li a2, 0x5678
    .word INSN
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
1:  j 1b

.align 2
trapped:
    csrr t1, mcause
    addi t1, t1, 1
    slli t1, t1, 16
    li t2, 0x3333
    or t1, t1, t2
    li t0, 0x100000
    sw t1, 0(t0)
2:  j 2b
