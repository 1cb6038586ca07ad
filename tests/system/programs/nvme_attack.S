# A malicious NVMe driver (the first NVMe controller on PCI bus 0 of the virt board):
# PRPs outside RAM, misaligned, aimed at the boot ROM; PRP lists outside RAM, pointing
# outside RAM, chaining to themselves; queues too big or outside RAM; doorbells beyond
# the ring and for queues that do not exist.  Each command's completion status prints
# as "N<n> C<status>" (hex, the 15-bit status field without DNR: SCT << 8 | SC; "T" if
# no completion came); a last flush after all that must still succeed, then the
# program prints "HEARTBEAT" and passes.  tests/hardening/test_malicious_guest.py
# judges the lines.
.include "common.inc"
.equ ECAM, 0x30000000
.equ BAR, 0x40000000
.equ ROM, 0x1000
.equ OUTSIDE, 0x1000000000
.equ QEMU_VENDOR, 0x1b36
.equ NVME_DEVICE, 0x0010
.equ AQ_SIZE, 8
.equ IOQ_SIZE, 4
.equ SPIN, 20000000             # polls before a completion counts as lost

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    # find the controller on bus 0, BAR0 (64-bit) at BAR, memory + bus master on
    li s8, ECAM
    li t2, 32
1:  lhu t0, 0(s8)
    li t1, QEMU_VENDOR
    bne t0, t1, 2f
    lhu t0, 2(s8)
    li t1, NVME_DEVICE
    beq t0, t1, found
2:  li t1, 1 << 15
    add s8, s8, t1
    addi t2, t2, -1
    bnez t2, 1b
    li a0, (2 << 16) | 0x3333   # no controller
    j finish
found:
    li s0, BAR
    sw s0, 0x10(s8)
    sw zero, 0x14(s8)
    li t0, 6
    sh t0, 4(s8)
    # enable with an 8-entry admin queue pair
    sw zero, 0x14(s0)           # CC.EN = 0
3:  lw t0, 0x1c(s0)
    andi t0, t0, 1
    bnez t0, 3b
    li t0, ((AQ_SIZE - 1) << 16) | (AQ_SIZE - 1)
    sw t0, 0x24(s0)
    la t0, asq
    sd t0, 0x28(s0)
    la t0, acq
    sd t0, 0x30(s0)
    li t0, (4 << 20) | (6 << 16) | 1
    sw t0, 0x14(s0)
4:  lw t0, 0x1c(s0)
    andi t1, t0, 2
    beqz t1, 5f
    li a0, (3 << 16) | 0x3333   # controller fatal status on a good admin queue
    j finish
5:  andi t0, t0, 1
    beqz t0, 4b
    li t0, 0x1000
    add s4, s0, t0              # the doorbells
    li s1, 0                    # admin SQ tail
    li s2, 0                    # admin CQ head
    li s3, 1                    # admin CQ phase
    li s5, 0                    # I/O SQ 1 tail
    li s6, 0                    # I/O CQ 1 head
    li s7, 1                    # I/O CQ 1 phase
    li s9, 1                    # attack number

    # 1: Identify into no memory at all
    li a1, 0x06; li a2, 0; li a3, OUTSIDE; li a4, 0; li a5, 1; li a6, 0; li a7, 0
    call admin
    # 2: Identify into the boot ROM (the ROM must not change)
    li t0, ROM
    ld s10, 0(t0)
    li a1, 0x06; li a2, 0; li a3, ROM; li a4, 0; li a5, 1; li a6, 0; li a7, 0
    call admin
    li t0, ROM
    ld t0, 0(t0)
    sub s10, t0, s10            # non-zero: the ROM changed
    # 3: Identify to a PRP1 that is not dword aligned
    la a3, page0
    addi a3, a3, 3
    li a1, 0x06; li a2, 0; li a4, 0; li a5, 1; li a6, 0; li a7, 0
    call admin
    # 4: create I/O CQ 1 with 65536 entries
    la a3, cq1
    li a1, 0x05; li a2, 0; li a4, 0; li a5, (0xffff << 16) | 1; li a6, 1; li a7, 0
    call admin
    # 5: create I/O CQ 1 outside RAM
    li a1, 0x05; li a2, 0; li a3, OUTSIDE; li a4, 0
    li a5, ((IOQ_SIZE - 1) << 16) | 1; li a6, 1; li a7, 0
    call admin
    # 6, 7: a real I/O queue pair (4 entries)
    la a3, cq1
    li a1, 0x05; li a2, 0; li a4, 0; li a5, ((IOQ_SIZE - 1) << 16) | 1; li a6, 1; li a7, 0
    call admin
    la a3, sq1
    li a1, 0x01; li a2, 0; li a4, 0; li a5, ((IOQ_SIZE - 1) << 16) | 1
    li a6, (1 << 16) | 1; li a7, 0
    call admin
    # 8: read 16 KiB with the PRP list pointer outside RAM
    la a3, page0
    li a1, 0x02; li a2, 1; li a4, OUTSIDE; li a5, 0; li a6, 0; li a7, 31
    call io
    # 9: read 16 KiB with a PRP list whose entries point outside RAM
    la t0, prplist
    li t1, OUTSIDE
    sd t1, 0(t0)
    sd t1, 8(t0)
    sd t1, 16(t0)
    la a3, page0
    la a4, prplist
    li a1, 0x02; li a2, 1; li a5, 0; li a6, 0; li a7, 31
    call io
    # 10: read 512 KiB (MDTS) through a PRP list page whose last entry chains to itself
    la t0, prplist
    la t1, page0
    li t2, 511
6:  sd t1, 0(t0)
    addi t0, t0, 8
    addi t2, t2, -1
    bnez t2, 6b
    la t1, prplist
    sd t1, 0(t0)
    la a3, page0
    la a4, prplist
    li a1, 0x02; li a2, 1; li a5, 0; li a6, 0; li a7, 1023
    call io
    # 11: doorbells beyond the rings and for queues that do not exist (ignored), then
    # a flush: the controller still serves the queue
    li t0, 1000
    sw t0, 0x8(s4)              # SQ 1 tail
    sw t0, 0xc(s4)              # CQ 1 head
    li t0, 1
    sw t0, 0x38(s4)             # SQ 7 tail
    li t1, 0x7fc
    add t1, s4, t1
    sw t0, 0(t1)                # the last doorbell slot below the MSI-X table
    li a1, 0x00; li a2, 1; li a3, 0; li a4, 0; li a5, 0; li a6, 0; li a7, 0
    call io
    # report the ROM check, then the heartbeat
    li a0, 'R'
    call putc
    snez a0, s10
    call puthex
    li a0, '\n'
    call putc
    la a1, heartbeat
7:  lbu a0, 0(a1)
    beqz a0, 8f
    call putc
    addi a1, a1, 1
    j 7b
8:  PASS

# -- submitting: a1 opcode, a2 nsid, a3 prp1, a4 prp2, a5-a7 cdw10-12 -----------------
# QUEUE_CMD: write the entry at the tail, ring, wait for the completion at the head,
# print "N<n> C<status>", ring the head.
.macro QUEUE_CMD sq, cq, tail, head, phase, size, db
    mv s11, ra
    la t0, \sq
    slli t1, \tail, 6
    add t0, t0, t1
    mv t1, s9                   # command id = attack number
    slli t1, t1, 16
    or t1, t1, a1
    sd t1, 0(t0)                # dw0 (opcode, cid), nsid
    sw a2, 4(t0)
    sd zero, 8(t0)
    sd zero, 16(t0)
    sd a3, 24(t0)
    sd a4, 32(t0)
    sw a5, 40(t0)
    sw a6, 44(t0)
    sw a7, 48(t0)
    sw zero, 52(t0)
    sd zero, 56(t0)
    fence
    addi \tail, \tail, 1
    li t1, \size
    bne \tail, t1, 1f
    li \tail, 0
1:  sw \tail, (8 * \db)(s4)
    la t3, \cq
    slli t1, \head, 4
    add t3, t3, t1
    li t4, SPIN
2:  lw t5, 12(t3)               # status << 17 | phase << 16 | cid
    srli t1, t5, 16
    andi t1, t1, 1
    beq t1, \phase, 3f
    addi t4, t4, -1
    bnez t4, 2b
    li t5, -1                   # lost
    j 4f
3:  addi \head, \head, 1
    li t1, \size
    bne \head, t1, 4f
    li \head, 0
    xori \phase, \phase, 1
4:  sw \head, (4 + 8 * \db)(s4)
    mv t6, t5
    li a0, 'N'
    call putc
    mv a0, s9
    call puthex
    li a0, ' '
    call putc
    li a0, 'C'
    call putc
    li t1, -1
    bne t6, t1, 5f
    li a0, 'T'
    call putc
    j 6f
5:  srli a0, t6, 17
    li t1, 0x3fff
    and a0, a0, t1
    call puthex
6:  li a0, '\n'
    call putc
    addi s9, s9, 1
    mv ra, s11
    ret
.endm

admin:
    QUEUE_CMD asq, acq, s1, s2, s3, AQ_SIZE, 0
io:
    QUEUE_CMD sq1, cq1, s5, s6, s7, IOQ_SIZE, 1

putc:                           # a0: the byte (keeps every t register but t0)
    li t0, UART
    sb a0, 0(t0)
    ret

puthex:                         # a0: the value, as hex with no leading zeros
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
.balign 4096
asq:    .zero 64 * AQ_SIZE
.balign 4096
acq:    .zero 16 * AQ_SIZE
.balign 4096
sq1:    .zero 64 * IOQ_SIZE
.balign 4096
cq1:    .zero 16 * IOQ_SIZE
.balign 4096
prplist: .zero 4096
page0:  .zero 4096
