# csrrs/csrrc on sstatus, as Linux's irqsave locks and user copies use them: translated
# code clears SIE, toggles SUM and does writes that change nothing without calling the
# CSR helper; every other write takes the helper.  Also the trap CSRs that translated
# code reads and writes in place.  Checks, in S-mode:
#   1-2  csrrc with rd == rs: rd gets the old value (SIE set), SIE is then clear
#   3    csrs with a zero register: no change, rd = sstatus
#   4    SD (bit 63) in the old value when FS is Dirty
#   5    csrs SIE when SIE is clear (the helper) sets it
#   6    csrc SUM when SUM is clear leaves SIE set
#   7    csrc SIE|SUM (the helper) clears both
#   8-9  csrs SIE with a delegated software interrupt pending traps at once, before
#        the next instruction; csrc SIE with it pending does not
#   10-13 csrrs/csrrc SUM (inline in S-mode): old values and the new sstatus
#   14-19 sscratch, sepc, scause, stval (inline): swap with rd == rs, set/clear bits
#   20-21 csrrc of SUM|FS|VS (Linux's kernel entry): the old value; FS is then Off, so
#         an FP instruction is illegal (delegated to S: strap counts and skips it)
#   22-24 csrw of a status with FS Clean, SPP and SPIE (Linux's exit): read back; an FP
#         write then runs and marks FS Dirty
#   25    csrw setting MXR (the helper), and clearing it
#   26    csrw setting SIE with a delegated software interrupt pending traps at once
.include "common.inc"
.option norelax
.equ SIE, 2
.equ SUM, (1 << 18)
.equ FS_DIRTY, (3 << 13)
.equ FS_CLEAN, (2 << 13)
.equ SPP, (1 << 8)
.equ SPIE, (1 << 5)
.equ MXR, (1 << 19)
.equ VS, (3 << 9)

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    li t0, 2                    # delegate S software interrupts
    csrw mideleg, t0
    li t0, 4                    # and illegal instructions (checks 21, 23)
    csrw medeleg, t0
    ENTER_S s_code, strap

s_code:
    li s4, 0
    csrsi sstatus, SIE
    li a1, SIE
    csrrc a1, sstatus, a1       # 1-2
    andi t0, a1, SIE
    EXPECT t0, SIE, 1
    csrr t0, sstatus
    andi t0, t0, SIE
    EXPECT t0, 0, 2
    li a2, 0
    csrr t1, sstatus
    csrrs a2, sstatus, a2       # 3
    EXPECT_EQ a2, t1, 3
    li t0, FS_DIRTY             # 4
    csrs sstatus, t0
    li t0, SIE
    csrrc a3, sstatus, t0
    srli a3, a3, 63
    EXPECT a3, 1, 4
    li t0, SIE                  # 5
    csrs sstatus, t0
    csrr t0, sstatus
    andi t0, t0, SIE
    EXPECT t0, SIE, 5
    li t0, SUM                  # 6
    csrc sstatus, t0
    csrr t0, sstatus
    andi t0, t0, SIE
    EXPECT t0, SIE, 6
    li t0, SUM                  # 7
    csrs sstatus, t0
    li t0, SUM | SIE
    csrc sstatus, t0
    csrr t0, sstatus
    li t1, SUM | SIE
    and t0, t0, t1
    EXPECT t0, 0, 7
    li t0, SUM                  # 10-13: the SUM toggle (inline, new block flags)
    csrrs a4, sstatus, t0
    and a4, a4, t0
    EXPECT a4, 0, 10
    csrr a5, sstatus
    and a5, a5, t0
    EXPECT_EQ a5, t0, 11
    csrrc a4, sstatus, t0
    and a4, a4, t0
    EXPECT_EQ a4, t0, 12
    csrr a5, sstatus
    and a5, a5, t0
    EXPECT a5, 0, 13
    li t0, 0x1234               # 14-15: csrrw sscratch with rd == rs swaps
    csrw sscratch, t0
    li t1, 0x5678
    csrrw t1, sscratch, t1
    EXPECT t1, 0x1234, 14
    csrr t1, sscratch
    EXPECT t1, 0x5678, 15
    li t0, 0xF00F               # 16-17: csrrs/csrrc on sscratch
    csrrs t1, sscratch, t0
    EXPECT t1, 0x5678, 16
    csrrci t1, sscratch, 0xF
    csrr t1, sscratch
    li t2, 0xF670
    EXPECT_EQ t1, t2, 17
    li t0, 0x80001006           # 18: sepc keeps an aligned address
    csrw sepc, t0
    csrr t1, sepc
    EXPECT_EQ t1, t0, 18
    li t0, 0x77                 # 19: scause and stval keep what is written
    csrw scause, t0
    csrw stval, t0
    csrr t1, scause
    csrr t2, stval
    add t1, t1, t2
    EXPECT t1, 0xEE, 19
    li t0, VS                   # VS Off (the hart may have V), so that what
    csrc sstatus, t0            # follows changes only bits written inline
    csrr s6, sstatus            # 20: FS Dirty since check 4, SUM clear
    li t0, SUM | FS_DIRTY | VS
    csrrc a4, sstatus, t0
    EXPECT_EQ a4, s6, 20
    li s5, 0
    fmv.d.x f1, zero            # 21: FS Off: illegal
    EXPECT s5, 1, 21
    li t0, FS_DIRTY             # 22: csrw of the saved status, FS Clean, SPP, SPIE
    not t0, t0
    and t1, s6, t0
    li t0, FS_CLEAN | SPP | SPIE
    or t1, t1, t0
    csrw sstatus, t1
    csrr t2, sstatus
    li t0, FS_DIRTY | SPP | SPIE | SUM
    and t2, t2, t0
    li t0, FS_CLEAN | SPP | SPIE
    EXPECT_EQ t2, t0, 22
    fmv.d.x f1, zero            # 23: FS Clean: it runs ...
    EXPECT s5, 1, 23
    csrr t2, sstatus            # 24: ... and marks FS Dirty
    li t0, FS_DIRTY
    and t2, t2, t0
    EXPECT_EQ t2, t0, 24
    li t0, MXR                  # 25: MXR set and cleared by csrw (the helper)
    csrr t1, sstatus
    or t1, t1, t0
    csrw sstatus, t1
    csrr t2, sstatus
    and t2, t2, t0
    EXPECT_EQ t2, t0, 25
    xor t1, t1, t0
    csrw sstatus, t1
    csrr t2, sstatus
    and t2, t2, t0
    EXPECT t2, 0, 25
    li t0, 2                    # 8-9: SSIP pending and enabled in sie, SIE clear
    csrs sie, t0
    csrs sip, t0
    li s3, 0                    # set by strap
    li t0, SIE
    csrc sstatus, t0            # clearing SIE again takes no interrupt
    EXPECT s3, 0, 9
    csrs sstatus, t0            # now it must be taken here
    li s4, 1                    # runs only after the handler returned
    EXPECT s3, 1, 8
    li t0, 2                    # 26: SSIP pending again, SIE clear (the handler's sret)
    csrs sip, t0
    li s3, 0
    li s4, 0
    csrr t1, sstatus
    ori t1, t1, SIE
    csrw sstatus, t1            # must trap here
    li s4, 1
    EXPECT s3, 1, 26
    PASS

.balign 4                       # stvec's base: its low two bits are the mode
strap:
    csrr t0, scause
    li t1, 2                    # an illegal instruction (checks 21, 23): skip it
    bne t0, t1, 3f
    addi s5, s5, 1
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    sret
3:  li t1, (1 << 63) | 1
    beq t0, t1, 1f
    li a0, (10 << 16) | 0x3333
    j finish
1:  bnez s4, 2f                 # s4 must still be 0: nothing ran after the csrs
    li s3, 1
    li t0, 2
    csrc sip, t0
    csrc sstatus, t0            # return with interrupts off (SPIE decides, below)
    li t0, (1 << 5)
    csrc sstatus, t0
    sret
2:  li a0, (11 << 16) | 0x3333
    j finish

mtrap:
    csrr t0, mcause
    li a0, (12 << 16) | 0x3333
    j finish

FINISH_ROUTINE
