# A malicious AHCI driver (ich9-ahci on PCI bus 0 of the virt board, a disk on port 0):
# PRDs outside RAM, with odd byte counts, aimed at the boot ROM, shorter than the
# transfer; 65535 PRD entries; the command table outside RAM.  Each command prints
# "H<n> T<PxTFD> I<PxIS>" (hex; "T" alone: the command never finished); the port is
# restarted after each (ST off and on, as a driver recovers from a task file error).
# A plain read at the end must still succeed, then "HEARTBEAT" and a pass.
.include "common.inc"
.equ ECAM, 0x30000000
.equ ABAR, 0x40000000
.equ ROM, 0x1000
.equ OUTSIDE, 0x1000000000
.equ INTEL, 0x8086
.equ ICH9_AHCI, 0x2922
.equ SPIN, 20000000
.equ PX_CLB, 0x00
.equ PX_FB, 0x08
.equ PX_IS, 0x10
.equ PX_CMD, 0x18
.equ PX_TFD, 0x20
.equ PX_SERR, 0x30
.equ PX_CI, 0x38
.equ CMD_IDLE, 0x16             # FRE | POD | SUD
.equ READ_DMA_EXT, 0x25

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li s8, ECAM
    li t2, 32
1:  lhu t0, 0(s8)
    li t1, INTEL
    bne t0, t1, 2f
    lhu t0, 2(s8)
    li t1, ICH9_AHCI
    beq t0, t1, found
2:  li t1, 1 << 15
    add s8, s8, t1
    addi t2, t2, -1
    bnez t2, 1b
    li a0, (2 << 16) | 0x3333   # no HBA
    j finish
found:
    li s0, ABAR
    sw s0, 0x24(s8)             # BAR5
    li t0, 6
    sh t0, 4(s8)
    li t0, 1 << 31
    sw t0, 0x04(s0)             # GHC.AE
    addi s1, s0, 0x100          # port 0
    la t0, cmdlist
    sw t0, PX_CLB(s1)
    sw zero, PX_CLB + 4(s1)
    la t0, rfis
    sw t0, PX_FB(s1)
    sw zero, PX_FB + 4(s1)
    li t0, CMD_IDLE
    sw t0, PX_CMD(s1)
    ori t0, t0, 1
    sw t0, PX_CMD(s1)           # ST
    li s9, 1                    # attack number

    # a1 PRD address, a2 PRD byte count - 1, a3 command table, a4 PRD entries, a5 sectors
    # 1: a PRD outside RAM
    li a1, OUTSIDE; li a2, 511; la a3, ctab; li a4, 1; li a5, 1
    call issue
    # 2: an odd byte count (511 bytes)
    la a1, buf; li a2, 510; la a3, ctab; li a4, 1; li a5, 1
    call issue
    # 3: 65535 PRD entries (the first one odd)
    la a1, buf; li a2, 510; la a3, ctab; li a4, 65535; li a5, 1
    call issue
    # 4: a disk read into the boot ROM (the ROM must not change)
    li t0, ROM
    ld s10, 0(t0)
    li a1, ROM; li a2, 511; la a3, ctab; li a4, 1; li a5, 1
    call issue
    li t0, ROM
    ld t0, 0(t0)
    sub s10, t0, s10
    # 5: the command table outside RAM
    la a1, buf; li a2, 511; li a3, OUTSIDE; li a4, 1; li a5, 1
    call issue
    # 6: 4 sectors into a 512-byte PRD
    la a1, buf; li a2, 511; la a3, ctab; li a4, 1; li a5, 4
    call issue
    # 7: a plain read: the port still works
    la a1, buf; li a2, 511; la a3, ctab; li a4, 1; li a5, 1
    call issue
    li a0, 'R'
    call putc
    snez a0, s10
    call puthex
    li a0, '\n'
    call putc
    la a1, heartbeat
3:  lbu a0, 0(a1)
    beqz a0, 4f
    call putc
    addi a1, a1, 1
    j 3b
4:  PASS

issue:
    mv s11, ra
    # the command table: a READ DMA EXT FIS at LBA 0, then one PRD
    la t0, ctab
    li t1, (READ_DMA_EXT << 16) | (0x80 << 8) | 0x27
    sw t1, 0(t0)                # FIS type H2D, C bit, command
    li t1, 0x40 << 24
    sw t1, 4(t0)                # LBA 0, device: LBA mode
    sw zero, 8(t0)
    sw a5, 12(t0)               # count
    sd a1, 0x80(t0)
    sw zero, 0x88(t0)
    sw a2, 0x8c(t0)
    # slot 0's header
    la t0, cmdlist
    slli t1, a4, 16
    ori t1, t1, 5               # CFL: 5 dwords
    sw t1, 0(t0)
    sw zero, 4(t0)
    sd a3, 8(t0)
    fence
    li t0, 1
    sw t0, PX_CI(s1)
    li t4, SPIN
1:  lw t0, PX_CI(s1)
    andi t0, t0, 1
    beqz t0, 2f
    lw t0, PX_IS(s1)
    li t1, 1 << 30              # TFES: the command failed (CI stays set)
    and t0, t0, t1
    bnez t0, 2f
    addi t4, t4, -1
    bnez t4, 1b
2:  mv a6, t4                   # 0: never finished (putc/puthex keep a6)
    li a0, 'H'
    call putc
    mv a0, s9
    call puthex
    li a0, ' '
    call putc
    li a0, 'T'
    call putc
    beqz a6, 3f                 # never finished: "T" alone
    lw a0, PX_TFD(s1)
    call puthex
    li a0, ' '
    call putc
    li a0, 'I'
    call putc
    lw a0, PX_IS(s1)
    call puthex
3:  li a0, '\n'
    call putc
    # restart the port: ST off (clears PxCI), wait for CR to drop, clear the errors
    li t0, CMD_IDLE
    sw t0, PX_CMD(s1)
    li t4, SPIN
4:  lw t0, PX_CMD(s1)
    srli t0, t0, 15             # CR
    andi t0, t0, 1
    beqz t0, 5f
    addi t4, t4, -1
    bnez t4, 4b
5:  li t0, -1
    sw t0, PX_IS(s1)
    sw t0, PX_SERR(s1)
    li t0, CMD_IDLE | 1
    sw t0, PX_CMD(s1)
    addi s9, s9, 1
    mv ra, s11
    ret

putc:
    li t0, UART
    sb a0, 0(t0)
    ret

puthex:
    mv t3, ra
    mv t4, a0
    li t5, 60
1:  srl t0, t4, t5
    bnez t0, 2f
    beqz t5, 2f
    addi t5, t5, -4
    j 1b
2:  srl a0, t4, t5
    andi a0, a0, 15
    li t0, 10
    blt a0, t0, 3f
    addi a0, a0, 'a' - 10 - '0'
3:  addi a0, a0, '0'
    call putc
    beqz t5, 4f
    addi t5, t5, -4
    j 2b
4:  mv ra, t3
    ret

mtrap:
    li a0, (99 << 16) | 0x3333
    j finish

FINISH_ROUTINE

.data
heartbeat: .string "HEARTBEAT\n"
.balign 1024
cmdlist: .zero 32 * 32
.balign 256
rfis:   .zero 256
.balign 128
ctab:   .zero 0x80 + 16
.balign 512
buf:    .zero 4096
