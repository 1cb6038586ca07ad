# A virtio-blk driver that submits a descriptor chain looping back on itself: the
# device must flag DEVICE_NEEDS_RESET (status bit 0x40) and raise a config-change
# interrupt; the machine keeps running (this program then passes).
.include "common.inc"
.equ VIO, 0x10008000            # the first -device lands in the highest slot
.equ QSIZE, 8

.macro W32 off, val
    li t1, \val
    sw t1, \off(s0)
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li s0, VIO
    lw t0, 0(s0)
    EXPECT t0, 0x74726976, 1    # "virt"
    lw t0, 8(s0)
    EXPECT t0, 2, 2             # a block device
    W32 0x70, 0                 # reset
    W32 0x70, 1                 # ACKNOWLEDGE
    W32 0x70, 3                 # DRIVER
    W32 0x24, 1                 # driver features, high word: VERSION_1
    W32 0x20, 1
    W32 0x24, 0
    W32 0x20, 0
    W32 0x70, 11                # FEATURES_OK
    lw t0, 0x70(s0)
    andi t0, t0, 8
    EXPECT t0, 8, 3
    W32 0x30, 0                 # queue 0
    W32 0x38, QSIZE
    la t0, desc
    sw t0, 0x80(s0)
    sw zero, 0x84(s0)
    la t0, avail
    sw t0, 0x90(s0)
    sw zero, 0x94(s0)
    la t0, used
    sw t0, 0xa0(s0)
    sw zero, 0xa4(s0)
    W32 0x44, 1                 # queue ready
    W32 0x70, 15                # DRIVER_OK
    # descriptor 0 -> descriptor 0 -> ... (NEXT flag, next = 0)
    la t0, desc
    la t1, header
    sd t1, 0(t0)
    li t1, 16
    sw t1, 8(t0)
    li t1, 1                    # VIRTQ_DESC_F_NEXT
    sh t1, 12(t0)
    sh zero, 14(t0)
    la t0, avail
    sh zero, 4(t0)              # ring[0] = descriptor 0
    li t1, 1
    sh t1, 2(t0)                # idx = 1
    fence
    sw zero, 0x50(s0)           # notify queue 0
    lw t0, 0x70(s0)
    andi t0, t0, 0x40
    EXPECT t0, 0x40, 4          # DEVICE_NEEDS_RESET
    lw t0, 0x60(s0)
    andi t0, t0, 2
    EXPECT t0, 2, 5             # config-change interrupt pending
    la t0, used
    lhu t1, 2(t0)
    EXPECT t1, 0, 6             # nothing was consumed
    PASS

mtrap:
    li a0, (99 << 16) | 0x3333  # any trap here is a failure
    j finish

FINISH_ROUTINE

.data
.balign 4096
desc:   .zero 16 * QSIZE
.balign 4096
avail:  .zero 4 + 2 * QSIZE + 2
.balign 4096
used:   .zero 4 + 8 * QSIZE + 2
header: .zero 16
