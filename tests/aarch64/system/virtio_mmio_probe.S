// The virt board's 32 virtio-mmio slots at 0x0a000000 (stride 0x200): for each slot
// its number, MagicValue, Version, DeviceID and VendorID; the slots filled by -device
// virtio-*-device show their device ids (the first -device in the highest slot).
        .include "common.inc"
        .global _start
        .equ VIRTIO_BASE, 0x0a000000
        .equ SLOTS, 32

        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el1, x0
        ldr     x19, =VIRTIO_BASE
        mov     x20, #0
1:      mov     x0, x20
        bl      print_hex
        ldr     w0, [x19, #0x000]       // MagicValue "virt"
        bl      print_hex
        ldr     w0, [x19, #0x004]       // Version
        bl      print_hex
        ldr     w0, [x19, #0x008]       // DeviceID
        bl      print_hex
        ldr     w0, [x19, #0x00c]       // VendorID
        bl      print_hex
        bl      newline
        add     x19, x19, #0x200
        add     x20, x20, #1
        cmp     x20, #SLOTS
        b.lo    1b
        b       power_off

        .section .bss
        .balign 16
        .space 4096
stack_top:
