// MSIs through the GICv2m frame at 0x08020000 (the default gic-version=2 virt): its
// MSI_TYPER (first SPI and count), then writes of INTIDs to MSI_SETSPI_NS as a PCIe
// device's MSI would do: 80 and 143 (the frame's first and last) are taken as IRQs
// (edge-triggered, acknowledged through GICC_IAR), 144 (outside the frame) is not,
// and one written with IRQs masked stays pending in the distributor until unmasked.
        .include "common.inc"
        .global _start
        .equ GICD, 0x08000000
        .equ GICC, 0x08010000
        .equ V2M, 0x08020000
        .equ SPINS, 20000

        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, irq_vectors
        msr     vbar_el1, x0
        ldr     x19, =V2M
        ldr     w0, [x19, #0x008]       // MSI_TYPER
        bl      print_hex
        bl      newline
        // distributor: INTIDs 80 and 143 enabled, edge-triggered, to CPU 0
        ldr     x1, =GICD
        mov     w0, #1
        str     w0, [x1]                // GICD_CTLR
        mov     w0, #(1 << 16)
        str     w0, [x1, #0x108]        // ISENABLER2: INTID 80
        mov     w0, #(1 << 15)
        str     w0, [x1, #0x110]        // ISENABLER4: INTID 143
        mov     w0, #2
        str     w0, [x1, #0xc14]        // ICFGR5: 80 edge
        mov     w0, #(2 << 30)
        str     w0, [x1, #0xc20]        // ICFGR8: 143 edge
        mov     w0, #1
        strb    w0, [x1, #0x850]        // ITARGETSR: 80 to CPU 0
        strb    w0, [x1, #0x88f]        // 143 to CPU 0
        // CPU interface
        ldr     x1, =GICC
        mov     w0, #0xff
        str     w0, [x1, #0x04]         // GICC_PMR
        mov     w0, #1
        str     w0, [x1]                // GICC_CTLR
        msr     daifclr, #2
        mov     x0, #80
        bl      send_msi
        mov     x0, #143
        bl      send_msi
        mov     x0, #144
        bl      send_msi
        // masked: pending in GICD_ISPENDR2, taken when unmasked
        msr     daifset, #2
        mov     w0, #80
        str     w0, [x19, #0x040]
        dsb     sy
        isb
        ldr     x1, =GICD
        ldr     w0, [x1, #0x208]        // ISPENDR2
        bl      print_hex
        bl      newline
        mov     x20, #0
        msr     daifclr, #2
        isb
        bl      wait_irq
        b       power_off

// send_msi(x0: INTID): write it to MSI_SETSPI_NS, report whether an IRQ came
send_msi:
        stp     x29, x30, [sp, #-16]!
        mov     x20, #0
        str     w0, [x19, #0x040]       // MSI_SETSPI_NS
        dsb     sy
        isb
        bl      wait_irq
        ldp     x29, x30, [sp], #16
        ret

// wait_irq: spin until the handler ran (x20), or print "none" after SPINS turns
wait_irq:
        stp     x29, x30, [sp, #-16]!
        ldr     x21, =SPINS
1:      cbnz    x20, 2f
        subs    x21, x21, #1
        b.ne    1b
        puts    s_none
        bl      newline
2:      ldp     x29, x30, [sp], #16
        ret

irq:
        stp     x29, x30, [sp, #-16]!
        stp     x0, x1, [sp, #-16]!
        stp     x2, x3, [sp, #-16]!
        stp     x4, x5, [sp, #-16]!
        ldr     x1, =GICC
        ldr     w5, [x1, #0x0c]         // GICC_IAR
        puts    s_irq
        mov     x0, x5
        bl      print_hex
        bl      newline
        ldr     x1, =GICC
        str     w5, [x1, #0x10]         // GICC_EOIR
        mov     x20, #1
        ldp     x4, x5, [sp], #16
        ldp     x2, x3, [sp], #16
        ldp     x0, x1, [sp], #16
        ldp     x29, x30, [sp], #16
        eret

        .balign 0x800
irq_vectors:
        .rept 5
        .balign 0x80
        b       vectors         // anything but an IRQ: the common report
        .endr
        .balign 0x80
        b       irq             // 0x280: IRQ, current EL with SP_EL1

        .section .rodata
s_irq:  .asciz "IRQ "
s_none: .asciz "none"

        .section .bss
        .balign 16
        .space 4096
stack_top:
