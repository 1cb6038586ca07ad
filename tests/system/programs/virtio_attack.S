# A malicious virtio driver for every virtio device of the virt board: the virtio-mmio
# slots, or with --defsym PCI=1 the virtio-pci functions on the root bus.  For each
# device and each attack it resets and re-initialises the device, builds a bad queue
# (queue 0, or 1 where 0 is a receive queue the device only fills when data comes),
# kicks it and prints "D<device id> A<n> S<status> U<used idx> R<rom changed>" (hex);
# after the last one it prints "HEARTBEAT" and passes: the machine still runs.  The host test
# (tests/hardening/test_malicious_guest.py) judges each line: DEVICE_NEEDS_RESET
# (status bit 0x40) or nothing consumed, no Python exception, the ROM intact.
.include "common.inc"
.equ VIO_FIRST, 0x10001000      # eight slots, 0x1000 apart
.equ VIO_LAST, 0x10008000
.equ ECAM, 0x30000000           # bus 0: device N's config space at ECAM + (N << 15)
.equ PCI_MMIO, 0x40000000       # where this program puts each function's BAR4
.equ VIRTIO_VENDOR, 0x1af4
.equ VIRTIO_PCI_BASE, 0x1040    # modern device id = 0x1040 + virtio id
.equ QSIZE, 8
.equ ROM, 0x1000                # the virt board's mask ROM (reset vector, dtb pointer)
.equ OUTSIDE, 0x1000000000      # no memory at all here
.equ F_NEXT, 1
.equ F_WRITE, 2
.equ F_INDIRECT, 4
.equ NATTACKS, 13

.macro W32 off, val
    li t1, \val
    sw t1, \off(s0)
.endm

# The transport: register offsets (virtio-mmio, or virtio-pci's common configuration
# structure in BAR4 at offset 0, the layout pemu/hw/virtio/pci.py documents).
.ifdef PCI
.macro SET_STATUS val
    li t1, \val
    sb t1, 0x14(s0)
.endm
.macro GET_STATUS reg
    lbu \reg, 0x14(s0)
.endm
.else
.macro SET_STATUS val
    W32 0x70, \val
.endm
.macro GET_STATUS reg
    lw \reg, 0x70(s0)
.endm
.endif

# desc[i] = {addr, len, flags, next}; addr and len from registers a1/a2
.macro DESC i, flags, next
    la t0, desc
    sd a1, (16 * \i)(t0)
    sw a2, (16 * \i + 8)(t0)
    li t1, \flags
    sh t1, (16 * \i + 12)(t0)
    li t1, \next
    sh t1, (16 * \i + 14)(t0)
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li s5, 0                    # devices attacked
.ifdef PCI
    li s7, 0                    # PCI device number on bus 0
next_slot:
    li t0, ECAM
    slli t1, s7, 15
    add s8, t0, t1              # its configuration space
    lhu t0, 0(s8)
    li t1, VIRTIO_VENDOR
    bne t0, t1, slot_done
    lhu s4, 2(s8)
    li t0, VIRTIO_PCI_BASE
    sub s4, s4, t0
    li s0, PCI_MMIO             # BAR4 (64-bit) at PCI_MMIO + (N << 16)
    slli t1, s7, 16
    add s0, s0, t1
    sw s0, 0x20(s8)
    sw zero, 0x24(s8)
    li t0, 6                    # memory space + bus master
    sh t0, 4(s8)
.else
    li s0, VIO_FIRST
next_slot:
    lw t0, 0(s0)
    EXPECT t0, 0x74726976, 1    # "virt"
    lw s4, 8(s0)                # device id (0: empty slot)
    beqz s4, slot_done
.endif
    addi s5, s5, 1
    li s2, 0                    # the queue to attack
    li t0, 1                    # net: queue 0 receives
    beq s4, t0, 1f
    li t0, 3                    # console/serial: port 0 receiveq
    beq s4, t0, 1f
    li t0, 19                   # vsock: rx
    bne s4, t0, 2f
1:  li s2, 1
2:  li s1, 1                    # attack number
next_attack:
    li t0, NATTACKS
    bgt s1, t0, device_done
    call clear_rings
    li a3, 0                    # 0: the queue's rings are ours; else used ring address
    li a4, QSIZE                # queue size to program
    li a5, 0                    # 1: descriptor table outside RAM
    # the attack's descriptors and avail ring (jump table by attack number)
    la t0, attacks
    slli t1, s1, 3
    add t0, t0, t1
    ld t0, -8(t0)
    jalr t0
after_setup:
    li t0, ROM
    ld s3, 0(t0)                # the ROM word the used ring would overwrite
    call init_device
    fence
.ifdef PCI
    sh s2, 0(s6)                # kick: the queue's notify address
.else
    sw s2, 0x50(s0)             # kick
.endif
    fence
    li t0, ROM
    ld t0, 0(t0)
    sub s3, t0, s3              # non-zero: the ROM changed
    # report
    li a0, 'D'
    call putc
    mv a0, s4
    call puthex
    li a0, ' '
    call putc
    li a0, 'A'
    call putc
    mv a0, s1
    call puthex
    li a0, ' '
    call putc
    li a0, 'S'
    call putc
    GET_STATUS a0
    call puthex
    li a0, ' '
    call putc
    li a0, 'U'
    call putc
    la t0, used
    lhu a0, 2(t0)
    call puthex
    li a0, ' '
    call putc
    li a0, 'R'
    call putc
    snez a0, s3
    call puthex
    li a0, '\n'
    call putc
    addi s1, s1, 1
    j next_attack

device_done:
    SET_STATUS 0                # leave the device reset
slot_done:
.ifdef PCI
    addi s7, s7, 1
    li t0, 32
    blt s7, t0, next_slot
.else
    li t0, VIO_LAST
    li t1, 0x1000
    add s0, s0, t1
    bleu s0, t0, next_slot
.endif
    beqz s5, no_device
    la a1, heartbeat
1:  lbu a0, 0(a1)
    beqz a0, 2f
    call putc
    addi a1, a1, 1
    j 1b
2:  PASS

no_device:
    li a0, (2 << 16) | 0x3333
    j finish

# -- the attacks: each sets descriptors/avail and returns to after_setup ----------------
attacks:
    .dword atk_loop, atk_long_chain, atk_outside_ram, atk_mmio, atk_huge_len
    .dword atk_indirect_nested, atk_avail_jump, atk_used_in_rom, atk_indirect_huge
    .dword atk_bad_size, atk_desc_outside, atk_head_out_of_range, atk_none

atk_loop:                       # 0 -> 0 -> ...
    la a1, buf
    li a2, 16
    DESC 0, F_NEXT, 0
    j avail_one
atk_long_chain:                 # 0 -> 1 -> ... -> 7 -> 0: longer than the queue
    la a1, buf
    li a2, 16
    DESC 0, F_NEXT, 1
    DESC 1, F_NEXT, 2
    DESC 2, F_NEXT, 3
    DESC 3, F_NEXT, 4
    DESC 4, F_NEXT, 5
    DESC 5, F_NEXT, 6
    DESC 6, F_NEXT, 7
    DESC 7, F_NEXT, 0
    j avail_one
atk_outside_ram:                # a buffer where there is no memory
    li a1, OUTSIDE
    li a2, 512
    DESC 0, F_NEXT, 1
    li a2, 512
    DESC 1, F_WRITE, 0
    j avail_one
atk_mmio:                       # device-writable buffer on the UART / this device
    li a1, UART
    li a2, 64
    DESC 0, F_NEXT, 1
    mv a1, s0                   # this device's own registers
    li a2, 256
    DESC 1, F_WRITE, 0
    j avail_one
atk_huge_len:                   # 4 GiB - 16 from a RAM buffer
    la a1, buf
    li a2, 0xfffffff0
    DESC 0, F_NEXT, 1
    DESC 1, F_WRITE, 0
    j avail_one
atk_indirect_nested:            # indirect table whose entry is itself indirect
    la t0, itab
    sd t0, 0(t0)
    li t1, 32
    sw t1, 8(t0)
    li t1, F_INDIRECT
    sh t1, 12(t0)
    la a1, itab
    li a2, 32
    DESC 0, F_INDIRECT, 0
    j avail_one
atk_avail_jump:                 # avail idx 0x8000 ahead with 8 entries
    la a1, buf
    li a2, 16
    DESC 0, F_WRITE, 0
    la t0, avail
    li t1, 0x8000
    sh t1, 2(t0)
    ret
atk_used_in_rom:                # a plausible buffer, the used ring in the ROM
    li a3, ROM
    la a1, buf
    li a2, 16
    DESC 0, F_NEXT, 1
    DESC 1, F_WRITE, 0
    j avail_one
atk_indirect_huge:              # indirect table 4 GiB long
    la a1, itab
    li a2, 0xfffffff0
    DESC 0, F_INDIRECT, 0
    j avail_one
atk_bad_size:                   # queue size 0xffff (not a power of 2, > max)
    li a4, 0xffff
    la a1, buf
    li a2, 16
    DESC 0, F_WRITE, 0
    j avail_one
atk_desc_outside:               # the descriptor table itself outside RAM
    li a5, 1
    j avail_one
atk_head_out_of_range:          # avail ring names descriptor 200 of 8
    la t0, avail
    li t1, 200
    sh t1, 4(t0)
    li t1, 1
    sh t1, 2(t0)
    ret

atk_none:                       # last, no attack: one writable buffer (virtio-rng fills
    la a1, buf                  # it: the device works again after all those resets)
    li a2, 16
    DESC 0, F_WRITE, 0
    j avail_one

avail_one:                      # ring[0] = 0, idx = 1
    la t0, avail
    sh zero, 4(t0)
    li t1, 1
    sh t1, 2(t0)
    ret

# -- device bring-up: a3 used ring (0: ours), a4 queue size, a5 desc outside --------------
init_device:
    SET_STATUS 0                # reset
    SET_STATUS 1                # ACKNOWLEDGE
    SET_STATUS 3                # DRIVER
.ifdef PCI
    sw zero, 0x00(s0)           # device features, low word
    lw t2, 0x04(s0)
    li t1, (1 << 28)            # VIRTIO_F_INDIRECT_DESC, if offered
    and t2, t2, t1
    W32 0x08, 1
    W32 0x0c, 1                 # high word: VERSION_1
    W32 0x08, 0
    sw t2, 0x0c(s0)
    SET_STATUS 11               # FEATURES_OK
    sh s2, 0x16(s0)             # queue_select
    sh a4, 0x18(s0)             # queue_size
    la t0, desc
    beqz a5, 1f
    li t0, OUTSIDE
1:  sd t0, 0x20(s0)
    la t0, avail
    sd t0, 0x28(s0)
    la t0, used
    beqz a3, 2f
    mv t0, a3
2:  sd t0, 0x30(s0)
    lhu t0, 0x1e(s0)            # queue_notify_off: notify at 0x3000 + off * 4
    slli t0, t0, 2
    li t1, 0x3000
    add t0, t0, t1
    add s6, s0, t0
    li t1, 1
    sh t1, 0x1c(s0)             # queue_enable
.else
    W32 0x14, 0                 # device features, low word
    lw t2, 0x10(s0)
    li t1, (1 << 28)            # VIRTIO_F_INDIRECT_DESC, if offered
    and t2, t2, t1
    W32 0x24, 1
    W32 0x20, 1                 # high word: VERSION_1
    W32 0x24, 0
    sw t2, 0x20(s0)
    SET_STATUS 11               # FEATURES_OK
    sw s2, 0x30(s0)
    sw a4, 0x38(s0)
    la t0, desc
    beqz a5, 1f
    li t0, OUTSIDE
1:  sw t0, 0x80(s0)
    srli t0, t0, 32
    sw t0, 0x84(s0)
    la t0, avail
    sw t0, 0x90(s0)
    sw zero, 0x94(s0)
    la t0, used
    beqz a3, 2f
    mv t0, a3
2:  sw t0, 0xa0(s0)
    sw zero, 0xa4(s0)
    W32 0x44, 1                 # queue ready
.endif
    SET_STATUS 15               # DRIVER_OK
    ret

clear_rings:
    la t0, desc
    la t1, rings_end
1:  sd zero, 0(t0)
    addi t0, t0, 8
    bltu t0, t1, 1b
    ret

putc:                           # a0: the byte
    li t0, UART
    sb a0, 0(t0)
    ret

puthex:                         # a0: the value, as hex with no leading zeros
    mv t3, ra
    mv t4, a0
    li t5, 60
1:  srl t0, t4, t5              # skip leading zero nibbles
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
    li a0, (99 << 16) | 0x3333  # any trap here is a failure
    j finish

FINISH_ROUTINE

.data
heartbeat: .string "HEARTBEAT\n"
.balign 4096
desc:   .zero 16 * QSIZE
.balign 4096
avail:  .zero 4 + 2 * QSIZE + 2
.balign 4096
used:   .zero 4 + 8 * QSIZE + 2
.balign 16
itab:   .zero 64
buf:    .zero 512
rings_end:
