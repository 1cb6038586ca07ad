# COUNT port writes to 0x80 (one KVM_EXIT_IO each), then the end: the i8042 reset ends
# pemu; QEMU's microvm has no i8042, so the bench adds QEMU's isa-debug-exit at 0xf4.
# (A triple fault through int3 is no option: kvm_pvm cannot emulate int3, docs/KVM.md.)
        .include "common.inc"
        .ifndef COUNT
        .set COUNT, 1000
        .endif
_start:
        mov $COUNT, %ecx
        test %ecx, %ecx
        jz 2f
1:      out %al, $0x80
        dec %ecx
        jnz 1b
2:      mov $0xfe, %al
        out %al, $0x64
        xor %eax, %eax
        out %al, $0xf4
3:      hlt
        jmp 3b
