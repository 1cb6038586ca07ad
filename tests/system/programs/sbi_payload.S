# An S-mode payload for OpenSBI (linked at 0x80200000): console output through the
# legacy SBI putchar, the SBI version, an S-mode timer interrupt through Sstc's
# stimecmp, then power-off through SBI SRST (failure: SRST with reason 1).
.equ SBI_EXT_SRST, 0x53525354

.macro SBI_PUTS label
    la s0, \label
1:  lbu a0, 0(s0)
    beqz a0, 2f
    li a7, 1                    # legacy console putchar
    ecall
    addi s0, s0, 1
    j 1b
2:
.endm

.globl _start
_start:
    SBI_PUTS hello
    li a7, 0x10                 # base extension: get spec version
    li a6, 0
    ecall
    bnez a0, fail
    li t0, 0x1000000            # SBI 1.0
    bne a1, t0, fail
    la t0, strap
    csrw stvec, t0
    li t0, (1 << 5)             # STIE
    csrw sie, t0
    rdtime t0
    addi t0, t0, 1000           # 100 us
    csrw 0x14d, t0              # stimecmp
    li s1, 0
3:  wfi
    csrsi sstatus, 2            # SIE: take it
    csrci sstatus, 2
    beqz s1, 3b
    li t0, 0x8000000000000005
    bne s1, t0, fail
    SBI_PUTS timer_ok
    li a0, 0                    # shutdown
    li a1, 0                    # no reason
    j srst
fail:
    SBI_PUTS failed
    li a0, 0
    li a1, 1                    # system failure
srst:
    li a7, SBI_EXT_SRST
    li a6, 0
    ecall
4:  j 4b

.balign 4
strap:
    csrr s1, scause
    li t0, -1
    csrw 0x14d, t0              # stimecmp far away: STIP drops
    sret

hello:    .asciz "payload: hello from S-mode\n"
timer_ok: .asciz "payload: timer interrupt ok\n"
failed:   .asciz "payload: FAILED\n"
