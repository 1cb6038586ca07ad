// EL1 start state, SVC at EL1, ERET to EL0, SVC and an undefined MRS from EL0,
// BRK, DAIF and SPSel, then PSCI SYSTEM_OFF.
        .include "common.inc"
        .global _start
        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el1, x0
        isb
        puts    s_hello
        mrs     x0, CurrentEL
        bl      print_hex
        mrs     x0, daif
        bl      print_hex
        mrs     x0, SPSel
        bl      print_hex
        mrs     x0, midr_el1
        bl      print_hex
        mrs     x0, mpidr_el1
        bl      print_hex
        bl      newline
        svc     #0x42
        brk     #0x7
        msr     daifclr, #0xf
        mrs     x0, daif
        bl      print_hex
        msr     daifset, #0x2
        mrs     x0, daif
        bl      print_hex
        bl      newline
        // SP_EL0 and SP_EL1 are separate stacks
        ldr     x1, =el0_stack_top
        msr     sp_el0, x1
        msr     SPSel, #0
        mov     x0, sp
        bl      print_hex
        msr     SPSel, #1
        mov     x2, sp
        ldr     x1, =stack_top
        sub     x0, x1, x2
        bl      print_hex
        bl      newline
        // to EL0 (EL0t, interrupts masked)
        adr     x0, el0_code
        msr     elr_el1, x0
        mov     x0, #0x3c0
        msr     spsr_el1, x0
        eret
el0_code:
        svc     #0x1234
        mrs     x0, sctlr_el1
        mov     x0, #7
        svc     #0
        puts    s_back
        mrs     x0, tpidr_el0
        b       done
done:
        // an SVC from EL0 landed at 0x400; now at EL0 still: leave through SVC
        svc     #0xffff
        b       .

        .section .rodata
s_hello: .asciz "hello EL "
s_back:  .asciz "EL0 after svc\n"

        .section .bss
        .balign 16
        .space 4096
stack_top:
        .space 4096
el0_stack_top:
