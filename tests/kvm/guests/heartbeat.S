# A heartbeat for VM-state tests (savevm/loadvm, migration): the in-kernel PIT ticks at
# 100 Hz (IRQ 0 through the PIC); for every tick n the main loop stores n into the first
# and the last word of page n % 256 of a 1 MiB region (dirtying RAM all the time; a
# whole page per tick is too slow for an emulating KVM), and every 20 ticks it prints
#     PEMU-BAREMETAL beat BBBBBBBB done NNNNNNNN sum SSSSSSSS
# where SSSSSSSS is the 32-bit sum of the first and last word of the 256 pages, read
# back from memory: a function of NNNNNNNN alone (tests/kvm/heartbeat.py), so a page
# lost or stale after a restore shows in the sum.  It never ends by itself.
        .include "common.inc"

        .set REGION, 0x400000
        .set PAGES, 256
        .set IDT, 0x206000
        .set VECTOR, 0x20                       # master PIC base + IRQ 0
        .set PIT_DIVISOR, 11932                 # 1193182 Hz / 11932 = 100 Hz
        .set TICKS_PER_BEAT, 20

_start:
        mov $0x6ff0, %esp
        call setup_idt
        mov $0xfffe, %bx                        # master: only IRQ 0; slave: nothing
        call setup_pic
        mov $0x34, %al                          # channel 0, lo/hi byte, mode 2
        out %al, $0x43
        mov $PIT_DIVISOR & 0xff, %al
        out %al, $0x40
        mov $PIT_DIVISOR >> 8, %al
        out %al, $0x40
        sti

wait:   cli
        mov ticks, %eax
        cmp done, %eax
        ja work
        sti                                     # sti; hlt: no tick is lost in between
        hlt
        jmp wait

work:   sti
        incl done
        mov done, %eax
        mov %eax, %edi                          # page done % PAGES: first and last word := done
        and $PAGES - 1, %edi
        shl $12, %edi
        add $REGION, %edi
        mov %eax, (%edi)
        mov %eax, 4092(%edi)
        decl countdown
        jnz wait
        movl $TICKS_PER_BEAT, countdown
        incl beats
        call beat
        jmp wait

beat:   mov $m_beat, %esi
        call puts
        mov beats, %eax
        call puthex8
        mov $m_done, %esi
        call puts
        mov done, %eax
        call puthex8
        mov $m_sum, %esi
        call puts
        xor %eax, %eax                          # the sum, read back from RAM
        mov $REGION, %edi
        mov $PAGES, %ecx
1:      add (%edi), %eax
        add 4092(%edi), %eax
        add $4096, %edi
        loop 1b
        call puthex8
        mov $nl, %esi
        call puts
        ret

irq_handler:
        push %eax
        incl ticks
        movb $0x20, %al                         # EOI
        out %al, $0x20
        pop %eax
        pushl 8(%esp)                           # return without IRET (interrupts.inc)
        popfl
        ret $8

        .include "interrupts.inc"

        .align 4
ticks:  .long 0
done:   .long 0
beats:  .long 0
countdown: .long TICKS_PER_BEAT
m_beat: .asciz "PEMU-BAREMETAL beat "
m_done: .asciz " done "
m_sum:  .asciz " sum "
nl:     .asciz "\n"
