# A long-mode guest for the monitor and gdb tests.  Multiboot enters it in 32-bit
# protected mode; it builds 4-level page tables itself (4 KiB pages for the first
# 2 MiB, one 2 MiB page for the next, and the same RAM aliased at HIGH, so that a
# debugger must walk the tables), switches to 64-bit mode, prints a banner and then
# counts forever in the high alias: COUNTER (physical) grows while the guest runs.
        .include "common.inc"

        .set PML4, 0x300000
        .set PDPT, 0x301000
        .set PD, 0x302000
        .set PT, 0x303000
        .set HIGH, 0xffff800000000000
        .set COUNTER, 0x280000
        .set EFER, 0xc0000080

_start:
        mov $0x6ff0, %esp
        mov $m_start, %esi
        call puts
        mov $PML4, %edi                 # four empty tables
        mov $(4 * 4096 / 4), %ecx
        xor %eax, %eax
        rep stosl
        movl $(PDPT + 3), PML4          # PML4[0]: identity
        movl $(PDPT + 3), PML4 + 256 * 8  # PML4[256]: the alias at HIGH
        movl $(PD + 3), PDPT
        movl $(PT + 3), PD              # PD[0]: 4 KiB pages for 0-2 MiB
        movl $(0x200000 + 0x83), PD + 8 # PD[1]: one 2 MiB page for 2-4 MiB
        movl $(0x200000 * 2 + 0x83), PD + 16  # PD[2]: 4-6 MiB (the tables' neighbours)
        mov $PT, %edi
        mov $3, %eax
        mov $512, %ecx
1:      mov %eax, (%edi)
        add $4096, %eax
        add $8, %edi
        loop 1b
        mov %cr4, %eax
        or $0x20, %eax                  # PAE
        mov %eax, %cr4
        mov $PML4, %eax
        mov %eax, %cr3
        mov $EFER, %ecx
        rdmsr
        or $0x100, %eax                 # LME
        wrmsr
        mov %cr0, %eax
        or $0x80000000, %eax            # PG: long mode is active
        mov %eax, %cr0
        ljmp $0x10, $long64             # the loader's GDT: 0x10 is a 64-bit code segment

        .code64
long64:
        movabs $(HIGH + high_entry), %rax
        jmp *%rax
high_entry:
        movabs $(HIGH + 0x6ff0), %rsp
        lea m_long(%rip), %rsi
        call puts64
        movabs $(HIGH + COUNTER), %rdi
        movq $0, (%rdi)
        .globl tick
tick:   incq (%rdi)
        .globl after_tick
after_tick:
        mov (%rdi), %rax
        jmp tick

puts64: mov $0x3fd, %dx
2:      in %dx, %al
        test $0x20, %al
        jz 2b
        lodsb
        test %al, %al
        jz 3f
        mov $0x3f8, %dx
        out %al, %dx
        jmp puts64
3:      ret

m_start: .asciz "PEMU-DEBUG start\n"
m_long:  .asciz "PEMU-DEBUG long mode\n"
