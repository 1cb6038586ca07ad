# AIA guest interrupt files (-M virt,aia=aplic-imsic,aia-guests=2 -cpu rv64,h=true, one
# hart, -bios none): hgeie's bits (GEILEN 2), hstatus.VGEIN selecting guest file 1 for
# vsiselect/vsireg and vstopei, an MSI to the guest file's page raising hgeip, mip.VSEIP
# (through VGEIN) and mip.SGEIP (through hgeie), then a VS guest that takes the guest
# external interrupt as its own supervisor external interrupt and claims it through
# its stopei and sireg, which the hart redirects to the guest file.  What the guest may
# not reach (the priorities through sireg) raises a virtual instruction; the same
# through vsireg from M an illegal instruction, and so does vstopei with VGEIN 0.
# CSRs by number: hstatus 0x600, hideleg 0x603, hie 0x604, hgeie 0x607, hgeip 0xe12,
# vsiselect 0x250, vsireg 0x251, vstopei 0x25c, vsstatus 0x200, vsie 0x204,
# vstvec 0x205, vscause 0x242, siselect 0x150, sireg 0x151, stopei 0x15c.
.include "common.inc"
.option norvc
.equ GUEST1, 0x28001000         # hart 0's guest file 1 (its S file is at 0x28000000)
.equ VGEIN1, 1 << 12
.equ VSEIP, 1 << 10
.equ SGEIP, 1 << 12
.equ MPV, 1 << 39
.equ ID, 7

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li s2, 0                    # illegal instructions (2) M took
    li s3, 0                    # virtual instructions (22) M took
    PMP_OPEN
    # GEILEN 2: hgeie bits 2:1
    li t0, -1
    csrw 0x607, t0
    csrr t1, 0x607
    EXPECT t1, 6, 1
    csrw 0x607, zero
    # VGEIN 1: vsiselect/vsireg reach guest file 1
    li t0, VGEIN1
    csrs 0x600, t0
    csrr t1, 0x600
    srli t1, t1, 12
    andi t1, t1, 0x3f
    EXPECT t1, 1, 2
    li t0, 0x70                 # eidelivery on
    csrw 0x250, t0
    li t0, 1
    csrw 0x251, t0
    csrr t1, 0x251
    EXPECT t1, 1, 3
    li t0, 0xc0                 # eie: identity ID
    csrw 0x250, t0
    li t0, 1 << ID
    csrw 0x251, t0
    csrr t1, 0x251
    EXPECT t1, 1 << ID, 4
    csrr t1, 0xe12              # nothing pending yet
    EXPECT t1, 0, 5
    csrr t1, 0x25c
    EXPECT t1, 0, 6
    # the MSI: the guest file's page
    li t0, GUEST1
    li t1, ID
    sw t1, 0(t0)
    csrr t1, 0xe12
    EXPECT t1, 2, 7
    csrr t1, 0x25c
    EXPECT t1, (ID << 16) | ID, 8
    li t0, 0x80                 # eip word 0
    csrw 0x250, t0
    csrr t1, 0x251
    EXPECT t1, 1 << ID, 9
    csrr t1, mip                # VSEIP through VGEIN, no SGEIP while hgeie is clear
    li t2, VSEIP | SGEIP
    and t1, t1, t2
    EXPECT t1, VSEIP, 10
    li t0, 2
    csrw 0x607, t0
    csrr t1, mip
    and t1, t1, t2
    EXPECT t1, VSEIP | SGEIP, 11
    csrw 0x607, zero
    # the priorities are not reachable through vsireg: an illegal instruction from M
    li t0, 0x30
    csrw 0x250, t0
    csrr t1, 0x251
    EXPECT s2, 1, 12
    # the guest: VSEI delegated to it, enabled, its handler at vs_trap.  mideleg's VS
    # bits are read-only one; QEMU 7.2 sets them only when mideleg is written.
    csrw mideleg, zero
    li t0, VSEIP
    csrw 0x603, t0
    csrs mie, t0
    la t0, vs_trap
    csrw 0x205, t0
    li t0, 1 << 9               # the guest's SEIE (vsie), its SIE (vsstatus)
    csrw 0x204, t0
    csrsi 0x200, 2
    li t0, 0x80                 # the guest's siselect starts at eip word 0
    csrw 0x250, t0
    li t0, (3 << 11)
    csrc mstatus, t0
    li t0, (1 << 11)
    csrs mstatus, t0            # MPP = S
    li t0, MPV
    csrs mstatus, t0            # MPV: VS
    la t0, vs_code
    csrw mepc, t0
    mret

vs_code:
    j vs_code                   # the interrupt is pending: it comes at once

vs_trap:                        # VS: the guest's supervisor external interrupt
    csrr s4, scause             # (vscause)
    csrr s5, 0x15c              # stopei (vstopei): the guest file's top
    csrw 0x15c, zero            # claim
    csrr s6, 0x151              # sireg: eip word 0, after the claim
    csrr s7, 0x150              # siselect
    li t0, 0x30                 # priorities: the hypervisor emulates them
    csrw 0x150, t0
    csrr t1, 0x151
    ecall                       # to M: ecall from VS (10)

after_guest:
    li t0, (1 << 63) | 9
    EXPECT_EQ s4, t0, 13
    EXPECT s5, (ID << 16) | ID, 14
    EXPECT s6, 0, 15
    EXPECT s7, 0x80, 16
    EXPECT s3, 1, 17
    csrr t1, 0xe12              # the claim cleared the line
    EXPECT t1, 0, 18
    csrr t1, mip
    li t2, VSEIP
    and t1, t1, t2
    EXPECT t1, 0, 19
    csrr t1, 0x250              # the guest's siselect was vsiselect
    EXPECT t1, 0x30, 20
    # VGEIN 0 names no file: vstopei is an illegal instruction
    li t0, VGEIN1
    csrc 0x600, t0
    li t0, GUEST1
    li t1, ID
    sw t1, 0(t0)
    csrr t1, 0x25c
    EXPECT s2, 2, 21
    csrr t1, 0xe12              # the file's line is up all the same
    EXPECT t1, 2, 22
    PASS

.balign 4
mtrap:
    csrr t0, mcause
    li t1, 10
    beq t0, t1, 1f
    li t1, 2
    bne t0, t1, 2f
    addi s2, s2, 1
    j 3f
2:  li t1, 22
    bne t0, t1, 4f
    addi s3, s3, 1
3:  csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
1:  li t0, MPV                  # back to M for the checks
    csrc mstatus, t0
    li t0, (3 << 11)
    csrs mstatus, t0
    la t0, after_guest
    csrw mepc, t0
    mret
4:  li a0, (99 << 16) | 0x3333  # anything else is a failure
    j finish

FINISH_ROUTINE
