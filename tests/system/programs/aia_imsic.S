# Smaia/Ssaia with IMSICs (virt, aia=aplic-imsic, one hart, -bios none): the M-level
# file through miselect/mireg and mtopei, MEIP from the file, an MSI from the APLIC's
# root domain (the UART's THRE line, source 10) and genmsi, the threshold, the
# big-endian seteipnum, and the S-level file through siselect/sireg, stopei and stopi.
# CSRs by number: miselect 0x350, mireg 0x351, mtopei 0x35c, mtopi 0xfb0,
# siselect 0x150, sireg 0x151, stopei 0x15c, stopi 0xdb0.
.include "common.inc"
.equ IMSIC_M, 0x24000000
.equ IMSIC_S, 0x28000000
.equ APLIC_M, 0x0c000000
.equ MEIP, 1 << 11
.equ SEIP, 1 << 9

.macro APLIC_W off, val         # a 32-bit write to the root domain's register \off
    li t0, APLIC_M + \off
    li t1, \val
    sw t1, 0(t0)
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li s0, 0                    # M external interrupts taken
    li s1, 0                    # identities they claimed, as a bit mask
    # eidelivery on, threshold off, identities 5 and 9 enabled
    li t0, 0x70
    csrw 0x350, t0
    li t0, 1
    csrw 0x351, t0
    csrr t1, 0x351
    EXPECT t1, 1, 1
    li t0, 0x72
    csrw 0x350, t0
    csrw 0x351, zero
    li t0, 0xc0
    csrw 0x350, t0
    li t0, (1 << 5) | (1 << 9)
    csrs 0x351, t0
    csrr t1, 0x351
    EXPECT t1, (1 << 5) | (1 << 9), 2
    # an odd eie register does not exist on RV64: reading it traps (counted in s2)
    li s2, 0
    li t0, 0xc1
    csrw 0x350, t0
    csrr t1, 0x351
    EXPECT s2, 1, 3
    # identity 9 arrives through the M file's page
    li t0, IMSIC_M
    li t1, 9
    sw t1, 0(t0)
    csrr t1, 0x35c
    EXPECT t1, (9 << 16) | 9, 4
    li t0, 0x80
    csrw 0x350, t0
    csrr t1, 0x351
    EXPECT t1, 1 << 9, 5
    csrr t1, mip
    li t2, MEIP
    and t1, t1, t2
    EXPECT t1, MEIP, 6
    li t0, MEIP
    csrs mie, t0
    csrr t1, 0xfb0
    srli t1, t1, 16
    EXPECT t1, 11, 7
    # take it: the handler claims through mtopei
    csrsi mstatus, 8
    nop
    csrci mstatus, 8
    EXPECT s0, 1, 8
    EXPECT s1, 1 << 9, 9
    csrr t1, mip
    li t2, MEIP
    and t1, t1, t2
    EXPECT t1, 0, 10
    # the threshold hides identity 9 but not 5
    li t0, 0x72
    csrw 0x350, t0
    li t0, 6
    csrw 0x351, t0
    li t0, IMSIC_M
    li t1, 9
    sw t1, 0(t0)
    csrr t1, 0x35c
    EXPECT t1, 0, 11
.ifdef QEMU72                   # QEMU 7.2 does not byte-swap seteipnum_be writes
    li t1, 5
    sw t1, 0(t0)
.else
    li t1, 5 << 24              # seteipnum_be: 5, big-endian
    sw t1, 4(t0)
.endif
    csrr t1, 0x35c
    EXPECT t1, (5 << 16) | 5, 12
    csrw 0x35c, zero            # claim 5
    csrw 0x351, zero            # threshold off: 9 shows again
    csrr t1, 0x35c
    EXPECT t1, (9 << 16) | 9, 13
    csrw 0x35c, zero
    csrr t1, 0x35c
    EXPECT t1, 0, 14
    # The APLIC root domain in MSI mode: source 10 (UART THRE, level high) to hart 0
    # as identity 5, MSIs to the M files at IMSIC_M.
    APLIC_W 0x1bc0, IMSIC_M >> 12   # mmsiaddrcfg
    APLIC_W 0x1bc4, 0           # mmsiaddrcfgh: one hart, no index bits
    APLIC_W 0x28, 6             # sourcecfg[10] = level high
    APLIC_W 0x3028, 5           # target[10] = hart 0, EIID 5
    APLIC_W 0x1edc, 10          # setienum
    APLIC_W 0, (1 << 8) | (1 << 2)  # domaincfg: IE, DM
    li s1, 0
    li t0, UART
    li t1, 2
    sb t1, 1(t0)                # IER.ETBEI: THRE raises source 10 -> an MSI
    csrsi mstatus, 8
    li t2, 100000
1:  beqz t2, 2f                 # bounded wait for the handler
    addi t2, t2, -1
    beqz s1, 1b
2:  csrci mstatus, 8
    EXPECT s1, 1 << 5, 15
    # genmsi: identity 9 to hart 0
    li s1, 0
    APLIC_W 0x3000, 9
    csrsi mstatus, 8
    li t2, 100000
1:  beqz t2, 2f
    addi t2, t2, -1
    beqz s1, 1b
2:  csrci mstatus, 8
    EXPECT s1, 1 << 9, 16
    # the S file from M-mode: siselect/sireg, stopei, SEIP and stopi
    li t0, 0x70
    csrw 0x150, t0
    li t0, 1
    csrw 0x151, t0
    li t0, 0xc0
    csrw 0x150, t0
    li t0, 1 << 3
    csrw 0x151, t0
    li t0, IMSIC_S
    li t1, 3
    sw t1, 0(t0)
    csrr t1, 0x15c
    EXPECT t1, (3 << 16) | 3, 17
    csrr t1, mip
    li t2, SEIP
    and t1, t1, t2
    EXPECT t1, SEIP, 18
    li t0, SEIP
    csrs mideleg, t0
    csrs mie, t0
    csrr t1, 0xdb0
    srli t1, t1, 16
    EXPECT t1, 9, 19
    csrr t1, 0xfb0              # delegated: not an M-level interrupt
    EXPECT t1, 0, 20
    csrw 0x15c, zero
    csrr t1, mip
    li t2, SEIP
    and t1, t1, t2
    EXPECT t1, 0, 21
    PASS

.align 2
mtrap:
    csrr t3, mcause
    bgez t3, exception
    slli t3, t3, 1              # drop the interrupt bit
    srli t3, t3, 1
    li t4, 11
    bne t3, t4, bad
    # claim every identity; quiet the UART if it was the APLIC's
1:  csrrw t3, 0x35c, zero
    srli t3, t3, 16
    beqz t3, 2f
    li t4, 1
    sll t4, t4, t3
    or s1, s1, t4
    addi s0, s0, 1
    li t4, UART
    sb zero, 1(t4)
    j 1b
2:  mret
exception:                      # an illegal CSR access: count it, skip the instruction
    li t4, 2
    bne t3, t4, bad
    addi s2, s2, 1
    csrr t3, mepc
    addi t3, t3, 4
    csrw mepc, t3
    mret
bad:
    li a0, (99 << 16) | 0x3333
    j finish

FINISH_ROUTINE
