// CNTVCT_EL0 and CNTPCT_EL0 as translated code reads them (from the counter's start
// slot, without the MRS helper: insn_el1.mrs), at EL1 and at EL0.  Prints, one line
// each: backward steps in ROUNDS interleaved CNTPCT/CNTVCT reads at EL1 (0); 1 when
// the virtual timer's ISTATUS, set by its CVAL comparison, agrees with CNTVCT; 1 when
// a 1 s spin on CNTVCT takes 1..4 s of the PL031 RTC; the same monotonic count at EL0.
        .include "common.inc"
        .global _start
        .equ ROUNDS, 20000
        .equ RTC, 0x09010000
        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el1, x0
        mov     x0, #3                  // EL0PCTEN | EL0VCTEN: EL0 reads both counters
        msr     cntkctl_el1, x0
        isb
        bl      monotonic
        bl      print_hex
        bl      newline
        // the virtual timer 1 ms ahead, masked: ISTATUS rises when CNTVCT reaches CVAL
        mrs     x1, cntvct_el0
        mov     x2, #62500
        add     x19, x1, x2
        msr     cntv_cval_el0, x19
        mov     x0, #3                  // ENABLE | IMASK
        msr     cntv_ctl_el0, x0
        isb
1:      mrs     x0, cntv_ctl_el0
        tbz     x0, #2, 1b
        mrs     x1, cntvct_el0
        cmp     x1, x19
        cset    x0, hs
        bl      print_hex
        bl      newline
        // rate: 62.5 M ticks against the RTC's seconds
        ldr     x3, =RTC
        ldr     w20, [x3]
        mrs     x1, cntvct_el0
        ldr     x2, =62500000
        add     x2, x1, x2
2:      mrs     x1, cntvct_el0
        cmp     x1, x2
        b.lo    2b
        ldr     w21, [x3]
        sub     w1, w21, w20
        mov     x0, #0
        cmp     w1, #1
        b.lo    3f
        cmp     w1, #4
        b.hi    3f
        mov     x0, #1
3:      bl      print_hex
        bl      newline
        // to EL0 (EL0t, interrupts masked)
        ldr     x1, =el0_stack_top
        msr     sp_el0, x1
        adr     x0, el0_code
        msr     elr_el1, x0
        mov     x0, #0x3c0
        msr     spsr_el1, x0
        eret
el0_code:
        bl      monotonic
        bl      print_hex
        bl      newline
        svc     #0xffff                 // done: the handler powers off
        b       .

// x0 = how often a read went backwards in ROUNDS reads of each counter, interleaved
monotonic:
        mov     x0, #0
        ldr     x2, =ROUNDS
        mrs     x3, cntvct_el0
1:      mrs     x4, cntpct_el0
        cmp     x4, x3
        cinc    x0, x0, lo
        mrs     x3, cntvct_el0
        cmp     x3, x4
        cinc    x0, x0, lo
        subs    x2, x2, #1
        b.ne    1b
        ret

        .section .bss
        .balign 16
        .space 4096
stack_top:
        .space 4096
el0_stack_top:
