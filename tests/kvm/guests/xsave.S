# Enables XSAVE and runs it in ring 0.  Hardware KVM runs it and the guest reboots;
# a KVM that emulates ring 0 (kvm_pvm) stops with an internal error that pemu reports.
        .include "common.inc"
_start:
        mov $0x6ff0, %esp
        mov %cr4, %eax
        or $0x40000, %eax
        mov %eax, %cr4
        xor %ecx, %ecx
        mov $3, %eax
        xor %edx, %edx
        xsetbv
        mov $0x200000, %edi
        mov $3, %eax
        xor %edx, %edx
        xsave (%edi)
        mov $msg, %esi
        call puts
        call reboot
msg:    .asciz "PEMU-BAREMETAL xsave ok\n"
