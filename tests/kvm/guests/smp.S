# Two vCPUs: the BSP starts the AP with INIT + STARTUP IPIs through its local APIC; the
# AP runs a real-mode trampoline that stores its APIC ID (from CPUID) and a flag.
        .include "common.inc"

        .set TRAMPOLINE, 0x8000         # STARTUP vector 0x08 -> CS:IP 0800:0000
        .set FLAG, 0x9000
        .set AP_ID, 0x9004
        .set ICR_LOW, 0xfee00300
        .set ICR_HIGH, 0xfee00310

_start:
        mov $0x6ff0, %esp
        movl $0, FLAG
        mov $ap_start, %esi
        mov $TRAMPOLINE, %edi
        mov $(ap_end - ap_start), %ecx
        rep movsb
        movl $0x01000000, ICR_HIGH      # destination APIC ID 1
        movl $0x00004500, ICR_LOW       # INIT, assert
        movl $0x01000000, ICR_HIGH
        movl $0x00004608, ICR_LOW       # STARTUP, vector 0x08
        mov $2000000, %ecx
1:      cmpl $0x50415550, FLAG          # "PUAP"
        je 2f
        pause
        loop 1b
        mov $m_noap, %esi
        call puts
        call reboot
2:      mov $m_ap, %esi
        call puts
        mov AP_ID, %eax
        call puthex8
        mov $m_bsp, %esi
        call puts
        mov $1, %eax
        cpuid
        shr $24, %ebx
        mov %ebx, %eax
        call puthex8
        mov $nl, %esi
        call puts
        call reboot

        .code16
ap_start:
        cli
        xor %ax, %ax
        mov %ax, %ds
        mov $1, %eax
        cpuid
        shr $24, %ebx
        movl %ebx, AP_ID
        movl $0x50415550, FLAG
3:      hlt
        jmp 3b
ap_end:
        .code32

m_ap:   .asciz "PEMU-BAREMETAL AP apic-id=0x"
m_bsp:  .asciz " BSP apic-id=0x"
m_noap: .asciz "PEMU-BAREMETAL AP did not start\n"
nl:     .asciz "\n"
