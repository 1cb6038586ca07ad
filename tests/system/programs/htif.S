# Prints through HTIF console (device 1, command 1), then exits with EXITCODE.
.globl _start
_start:
    la t0, msg
1:  lbu t1, 0(t0)
    beqz t1, 2f
    li t2, 0x0101000000000000
    or t2, t2, t1
    la t3, tohost
    sd t2, 0(t3)
3:  ld t4, 0(t3)
    bnez t4, 3b
    addi t0, t0, 1
    j 1b
2:  li t2, EXITCODE*2+1
    la t3, tohost
    sd t2, 0(t3)
4:  j 4b
msg: .asciz "spike says hi\n"
.data
.balign 64
.globl tohost
tohost: .dword 0
.globl fromhost
fromhost: .dword 0
