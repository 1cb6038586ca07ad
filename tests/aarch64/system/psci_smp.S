// PSCI with -smp 2: VERSION, FEATURES, AFFINITY_INFO of the secondary (off), CPU_ON
// with a context id, the secondary reporting its MPIDR and x0 and turning itself off
// (CPU_OFF), AFFINITY_INFO (off again), CPU_ON of a CPU that does not exist, then
// SYSTEM_OFF.
        .include "common.inc"
        .global _start
        .equ PSCI_VERSION, 0x84000000
        .equ CPU_OFF, 0x84000002
        .equ CPU_ON, 0xc4000003
        .equ AFFINITY_INFO, 0xc4000004
        .equ PSCI_FEATURES, 0x8400000a

        .text
_start:
        ldr     x0, =stack_top
        mov     sp, x0
        adr     x0, vectors
        msr     vbar_el1, x0
        ldr     x0, =PSCI_VERSION
        hvc     #0
        bl      print_hex
        ldr     x0, =PSCI_FEATURES
        ldr     x1, =CPU_ON
        hvc     #0
        bl      print_hex
        ldr     x0, =PSCI_FEATURES
        ldr     x1, =0x84000099
        hvc     #0
        bl      print_hex
        ldr     x0, =AFFINITY_INFO
        mov     x1, #1
        mov     x2, #0
        hvc     #0
        bl      print_hex
        bl      newline
        ldr     x0, =CPU_ON
        mov     x1, #1
        adr     x2, secondary
        ldr     x3, =0x5eed
        hvc     #0
        mov     x20, x0         // printed once the secondary is done printing
        // wait until the secondary has reported, then until it is off
        ldr     x1, =flag
0:      ldr     x0, [x1]
        cbz     x0, 0b
1:      ldr     x0, =AFFINITY_INFO
        mov     x1, #1
        mov     x2, #0
        hvc     #0
        cmp     x0, #1
        b.ne    1b
        mov     x0, x20
        bl      print_hex
        ldr     x1, =flag
        ldr     x0, [x1]
        bl      print_hex
        ldr     x0, =CPU_ON
        mov     x1, #7
        adr     x2, secondary
        mov     x3, #0
        hvc     #0
        bl      print_hex
        bl      newline
        b       power_off

secondary:
        ldr     x1, =stack2_top
        mov     sp, x1
        mov     x19, x0
        puts    s_sec
        mrs     x0, mpidr_el1
        bl      print_hex
        mov     x0, x19
        bl      print_hex
        mrs     x0, CurrentEL
        bl      print_hex
        bl      newline
        ldr     x1, =flag
        mov     x0, #0x11
        str     x0, [x1]
        dsb     sy
        ldr     x0, =CPU_OFF
        hvc     #0
        b       .

        .section .rodata
s_sec:  .asciz "secondary "

        .section .bss
        .balign 16
flag:   .space 16
        .space 4096
stack_top:
        .space 4096
stack2_top:
