# Self-modifying code with fence.i (M-mode, -bios none): code written at run time runs,
# and after it is patched and fence.i runs, the new code runs - also when the patched
# block is reached through a direct jump that the native backend chains.
.include "common.inc"

.equ ADDI_A0, 0x00000513   # addi a0, x0, imm (imm in bits 31:20)
.equ RET, 0x00008067       # jalr x0, 0(ra)
.equ JAL_PLUS_8, 0x0080006f  # jal x0, .+8
.equ NOP, 0x00000013

.globl _start
_start:
    la s1, code
    # 1: freshly written code runs
    li t1, ADDI_A0 | (11 << 20)
    sw t1, 0(s1)
    li t1, RET
    sw t1, 4(s1)
    fence.i
    jalr ra, 0(s1)
    EXPECT a0, 11, 1
    # 2: patched in place, it runs the new code
    li t1, ADDI_A0 | (22 << 20)
    sw t1, 0(s1)
    fence.i
    jalr ra, 0(s1)
    EXPECT a0, 22, 2
    # 3: code -> (direct jump) -> code+8, the jump target patched on every round
    li t1, JAL_PLUS_8
    sw t1, 0(s1)
    li t1, NOP
    sw t1, 4(s1)
    li t1, RET
    sw t1, 12(s1)
    li s2, 1            # i
    li s3, 0            # sum of what the patched code returned
    li s4, 100
3:  slli t1, s2, 20
    li t2, ADDI_A0
    or t1, t1, t2
    sw t1, 8(s1)
    fence.i
    jalr ra, 0(s1)
    add s3, s3, a0
    addi s2, s2, 1
    ble s2, s4, 3b
    EXPECT s3, 5050, 3
    # 4: the same bytes again after a different patch: no stale block comes back
    li t1, ADDI_A0 | (7 << 20)
    sw t1, 8(s1)
    fence.i
    jalr ra, 0(s1)
    EXPECT a0, 7, 4
    PASS

FINISH_ROUTINE

.balign 4096
code:
    .space 4096
