# Prints through the 16550A and reboots through the i8042.
        .include "common.inc"
_start:
        mov $0x6ff0, %esp
        cmp $0x2BADB002, %eax
        jne bad
        mov $msg, %esi
        call puts
        mov 16(%ebx), %esi      # multiboot info: cmdline pointer
        call puts
        mov $nl, %esi
        call puts
        call reboot
bad:    mov $badmsg, %esi
        call puts
        call reboot
msg:    .asciz "PEMU-BAREMETAL hello from a KVM guest, cmdline: "
nl:     .asciz "\n"
badmsg: .asciz "PEMU-BAREMETAL bad multiboot magic\n"
