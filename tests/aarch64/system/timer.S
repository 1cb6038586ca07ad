// The generic timer through the GICv3: the virtual timer (PPI 27) and the physical
// timer (PPI 30) each interrupt once, taken at VBAR+0x280 (current EL, SP_EL1),
// acknowledged through ICC_IAR1_EL1 and ended with ICC_EOIR1_EL1; WFI waits for them.
        .include "common.inc"
        .global _start
        .equ GICD, 0x08000000
        .equ GICR, 0x080a0000
        .equ SGI_FRAME, GICR + 0x10000

        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, irq_vectors
        msr     vbar_el1, x0
        // distributor: affinity routing, group 1 on
        ldr     x1, =GICD
        mov     w0, #(1 << 4 | 1 << 1)
        str     w0, [x1]
        // redistributor: awake; PPIs 27 and 30 in group 1, enabled
        ldr     x1, =GICR
        str     wzr, [x1, #0x14]
        ldr     x1, =SGI_FRAME
        mov     w0, #(1 << 27 | 1 << 30)
        str     w0, [x1, #0x80]
        str     w0, [x1, #0x100]
        // the CPU interface
        mov     x0, #1
        msr     S3_0_C12_C12_5, x0      // ICC_SRE_EL1
        isb
        mov     x0, #0xff
        msr     S3_0_C4_C6_0, x0        // ICC_PMR_EL1
        mov     x0, #1
        msr     S3_0_C12_C12_7, x0      // ICC_IGRPEN1_EL1
        isb
        mrs     x0, cntfrq_el0
        bl      print_hex
        bl      newline
        // the virtual timer, 1 ms from now, by TVAL
        mov     x0, #62500
        msr     cntv_tval_el0, x0
        mov     x0, #1
        msr     cntv_ctl_el0, x0
        mov     x20, #0
        // wait with IRQs masked: a masked pending interrupt still ends WFI, and one
        // taken between the flag test and the WFI would leave it waiting for another
1:      msr     daifset, #2
        cbnz    x20, 3f
        wfi
        msr     daifclr, #2             // taken here, if it is the one
        isb
        b       1b
3:      msr     daifclr, #2
        // the physical timer, by CVAL
        mrs     x0, cntpct_el0
        mov     x1, #62500
        add     x0, x0, x1
        msr     cntp_cval_el0, x0
        mov     x0, #1
        msr     cntp_ctl_el0, x0
        mov     x20, #0
2:      msr     daifset, #2
        cbnz    x20, 4f
        wfi
        msr     daifclr, #2
        isb
        b       2b
4:      msr     daifclr, #2
        // a masked timer does not interrupt: ISTATUS rises, nothing is taken
        mov     x0, #3
        msr     cntv_ctl_el0, x0
        mov     x0, #0
        msr     cntv_tval_el0, x0
        isb
        mrs     x0, cntv_ctl_el0
        bl      print_hex
        bl      newline
        b       power_off

irq:
        stp     x29, x30, [sp, #-16]!
        stp     x0, x1, [sp, #-16]!
        stp     x2, x3, [sp, #-16]!
        stp     x4, x5, [sp, #-16]!
        mrs     x5, S3_0_C12_C12_0      // ICC_IAR1_EL1
        puts    s_irq
        mov     x0, x5
        bl      print_hex
        mrs     x0, cntv_ctl_el0
        bl      print_hex
        mrs     x0, cntp_ctl_el0
        bl      print_hex
        bl      newline
        msr     cntv_ctl_el0, xzr       // the line falls
        msr     cntp_ctl_el0, xzr
        msr     S3_0_C12_C12_1, x5      // ICC_EOIR1_EL1
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

        .section .bss
        .balign 16
        .space 4096
stack_top:
