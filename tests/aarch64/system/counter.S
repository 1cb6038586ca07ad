// A guest for the monitor and the debugger: known values in x5/x6 and VBAR_EL1, then a
// loop that counts in x2 and stores the count at 0x40200000 for ever.
        .global _start
        .equ COUNTER, 0x40200000

        .text
_start:
        ldr     x1, =COUNTER
        mov     x2, #0
        mov     x5, #0x1234
        movk    x5, #0xabcd, lsl #16
        mov     x6, #7
        ldr     x0, =0x40080800         // the vectors' address, for GDB to read
        msr     vbar_el1, x0
loop:   add     x2, x2, #1
        str     x2, [x1]
        b       loop
