# Touches an unbacked I/O port and unbacked MMIO, then reports what it read.
        .include "common.inc"
_start:
        mov $0x6ff0, %esp
        mov $0x510, %dx
        mov $0x12345678, %eax
        out %eax, %dx
        in %dx, %eax
        mov %eax, %ebx
        movl $0xabcd, 0xd0000000
        mov 0xd0000000, %eax
        mov $m1, %esi
        call puts
        xchg %eax, %ebx
        call puthex8
        mov $m2, %esi
        call puts
        mov %ebx, %eax
        call puthex8
        mov $nl, %esi
        call puts
        call reboot
m1:     .asciz "PEMU-BAREMETAL port=0x"
m2:     .asciz " mmio=0x"
nl:     .asciz "\n"
