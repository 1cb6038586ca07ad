// PCIe through the ECAM at 0x4010000000 (the virt board's high ECAM, bus 0): for each
// function present its devfn, IDs, class, header and subsystem words and interrupt
// pin; each BAR's value and its size mask (all ones written, read back, restored);
// MSI-X and the virtio capabilities.  Then the memory BARs are assigned in the 32-bit
// window from 0x10000000, memory decoding is enabled, and each BAR is read through the
// window: the dword at 0x0c, and in a 64-bit BAR (virtio's) num_queues at 0x12.
        .include "common.inc"
        .global _start
        .equ ECAM, 0x4010000000
        .equ MMIO32, 0x10000000

        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el1, x0
        ldr     x19, =ECAM
        ldr     x27, =MMIO32            // next free address in the 32-bit window
        mov     x20, #0                 // devfn
function:
        add     x21, x19, x20, lsl #12  // this function's configuration space
        ldr     w22, [x21]
        mov     w0, #0xffff
        and     w1, w22, w0
        cmp     w1, w0
        b.eq    next
        mov     x0, x20
        bl      print_hex
        mov     x0, x22
        bl      print_hex
        ldr     w0, [x21, #0x08]        // class code, revision
        bl      print_hex
        ldr     w0, [x21, #0x0c]        // BIST, header type, latency, cache line
        bl      print_hex
        ldr     w0, [x21, #0x2c]        // subsystem id, subsystem vendor
        bl      print_hex
        ldr     w0, [x21, #0x3c]        // interrupt pin, line
        bl      print_hex
        bl      newline
        // the BARs, sized
        mov     x23, #0x10
1:      ldr     w24, [x21, x23]
        mvn     w0, wzr
        str     w0, [x21, x23]
        ldr     w25, [x21, x23]
        str     w24, [x21, x23]
        mov     x0, x24
        bl      print_hex
        mov     x0, x25
        bl      print_hex
        add     x23, x23, #4
        cmp     x23, #0x28
        b.lo    1b
        bl      newline
        // the capabilities a driver looks for, found by walking the list (their order
        // and places in config space are the device's own): MSI-X's control word,
        // table and PBA; the virtio structures (common, notify, ISR, device config)
        // with their BAR, offset, length (and the notify multiplier)
        mov     w5, #0x11
        mov     w6, #0xff
        bl      find_cap
        mov     x24, x0
        cbz     x24, 3f
        ldr     w0, [x21, x24]
        and     w0, w0, #0xffff00ff     // without the next pointer
        bl      print_hex
        add     x0, x24, #4
        ldr     w0, [x21, x0]
        bl      print_hex
        add     x0, x24, #8
        ldr     w0, [x21, x0]
        bl      print_hex
3:      mov     w25, #1
2:      mov     w5, #0x09
        mov     w6, w25
        bl      find_cap
        mov     x24, x0
        cbz     x24, 1f
        ldr     w0, [x21, x24]
        and     w0, w0, #0xffff00ff
        bl      print_hex
        mov     x26, #4
7:      add     x0, x24, x26
        ldr     w0, [x21, x0]
        bl      print_hex
        add     x26, x26, #4
        cmp     x26, #16
        b.lo    7b
        cmp     w25, #2
        b.ne    1f
        add     x0, x24, #16
        ldr     w0, [x21, x0]
        bl      print_hex
1:      add     w25, w25, #1
        cmp     w25, #5
        b.lo    2b
        bl      newline
        // assign the memory BARs, enable decoding, read each through the window
        mov     x23, #0x10
4:      ldr     w24, [x21, x23]
        tbnz    w24, #0, 6f             // an I/O BAR: left alone
        mvn     w0, wzr
        str     w0, [x21, x23]
        ldr     w25, [x21, x23]
        and     w25, w25, #0xfffffff0
        cbz     w25, 6f                 // not implemented
        neg     w26, w25                // its size
        sub     x0, x26, #1
        add     x27, x27, x0
        bic     x27, x27, x0            // aligned to it
        str     w27, [x21, x23]
        ubfx    w28, w24, #1, #2
        cmp     w28, #2                 // 64-bit: the next BAR is the high half
        b.ne    5f
        add     x23, x23, #4
        str     wzr, [x21, x23]
5:      ldrh    w0, [x21, #0x04]
        orr     w0, w0, #2              // memory space enable
        strh    w0, [x21, #0x04]
        ldr     w0, [x27, #0x0c]        // MSI-X: entry 0's vector control (masked)
        bl      print_hex
        cmp     w28, #2
        b.ne    5f
        ldrh    w0, [x27, #0x12]        // virtio's BAR: num_queues in the common config
        bl      print_hex
5:
        add     x27, x27, x26
6:      add     x23, x23, #4
        cmp     x23, #0x28
        b.lo    4b
        bl      newline
next:   add     x20, x20, #1
        cmp     x20, #256
        b.lo    function
        b       power_off

// find_cap(x21: config space, w5: capability id, w6: virtio cfg_type or 0xff for any)
// -> x0: the capability's offset, 0 if there is none; clobbers x7
find_cap:
        ldr     w0, [x21, #0x04]
        tbz     w0, #20, 9f             // status: no capabilities list
        ldrb    w0, [x21, #0x34]
1:      and     w0, w0, #0xfc
        cbz     w0, 9f
        ldrb    w7, [x21, x0]
        cmp     w7, w5
        b.ne    2f
        cmp     w6, #0xff
        b.eq    8f
        add     x7, x0, #3
        ldrb    w7, [x21, x7]
        cmp     w7, w6
        b.eq    8f
2:      add     x7, x0, #1
        ldrb    w0, [x21, x7]
        b       1b
9:      mov     x0, #0
8:      ret

        .section .bss
        .balign 16
        .space 4096
stack_top:
