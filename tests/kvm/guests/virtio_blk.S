# virtio-blk round trip with interrupts: reads sector 0, writes it to sector 1, each time
# sleeping in HLT until the device's interrupt (irqfd -> IRQ 12 via the slave PIC) wakes
# the CPU.  Prints the first bytes read, the interrupt count and the request status.
        .include "common.inc"

        .set VIRTIO, 0xfeb00e00         # the first device: highest microvm slot, IRQ 12
        .set DESC, 0x200000
        .set AVAIL, 0x201000
        .set USED, 0x202000
        .set REQHDR, 0x203000
        .set DATA, 0x204000
        .set STATUSB, 0x205000
        .set IDT, 0x206000
        .set VECTOR, 0x2c               # slave PIC base 0x28 + IRQ 12 - 8

_start:
        mov $0x6ff0, %esp
        call setup_idt
        mov $0xeffb, %bx                # master: only the cascade; slave: only IRQ 12
        call setup_pic
        cmpl $0x74726976, VIRTIO+0x00   # "virt"
        jne nodev
        cmpl $2, VIRTIO+0x08            # device id: block
        jne nodev
        movl $0, VIRTIO+0x70            # reset
        movl $3, VIRTIO+0x70            # ACKNOWLEDGE | DRIVER
        movl $1, VIRTIO+0x24            # driver features word 1
        movl $1, VIRTIO+0x20            # VIRTIO_F_VERSION_1
        movl $0, VIRTIO+0x24
        movl $0, VIRTIO+0x20
        movl $11, VIRTIO+0x70           # | FEATURES_OK
        movl $0, VIRTIO+0x30            # queue 0
        movl $8, VIRTIO+0x38
        movl $DESC, VIRTIO+0x80
        movl $0, VIRTIO+0x84
        movl $AVAIL, VIRTIO+0x90
        movl $0, VIRTIO+0x94
        movl $USED, VIRTIO+0xa0
        movl $0, VIRTIO+0xa4
        movl $1, VIRTIO+0x44            # queue ready
        movl $15, VIRTIO+0x70           # | DRIVER_OK
        sti

        movl $0, %eax                   # VIRTIO_BLK_T_IN, sector 0
        movl $0, %ecx
        movw $2, %dx                    # data descriptor: device writes
        call request
        mov $m_read, %esi
        call puts
        mov $DATA, %esi                 # the disk's first bytes (NUL-terminated there)
        call puts
        mov $nl, %esi
        call puts

        movl $1, %eax                   # VIRTIO_BLK_T_OUT, sector 1
        movl $1, %ecx
        movw $0, %dx                    # data descriptor: device reads
        call request

        mov $m_irqs, %esi
        call puts
        mov irq_count, %eax
        call puthex8
        mov $m_status, %esi
        call puts
        movzbl STATUSB, %eax
        call puthex8
        mov $nl, %esi
        call puts
        call reboot

# request: type %eax, sector %ecx, data-descriptor write flag %dx; waits for completion
request:
        mov %eax, REQHDR
        movl $0, REQHDR+4
        mov %ecx, REQHDR+8
        movl $0, REQHDR+12
        movb $0xff, STATUSB
        # d0: header (device reads), next 1
        movl $REQHDR, DESC+0
        movl $0, DESC+4
        movl $16, DESC+8
        movw $1, DESC+12
        movw $1, DESC+14
        # d1: 512 bytes of data, next 2
        movl $DATA, DESC+16
        movl $0, DESC+20
        movl $512, DESC+24
        or $1, %dx
        movw %dx, DESC+28
        movw $2, DESC+30
        # d2: status byte (device writes)
        movl $STATUSB, DESC+32
        movl $0, DESC+36
        movl $1, DESC+40
        movw $2, DESC+44
        movw $0, DESC+46
        movzwl AVAIL+2, %eax            # avail.ring[idx % 8] = 0; idx++
        mov %eax, %ebx
        and $7, %ebx
        movw $0, AVAIL+4(,%ebx,2)
        inc %eax
        movw %ax, AVAIL+2
        mov %eax, want_used
        mov irq_count, %eax
        mov %eax, want_irqs
        incl want_irqs
        movl $0, VIRTIO+0x50            # QueueNotify: queue 0 (an ioeventfd in pemu)
        # Wait for this request's own interrupt, not just the used ring: otherwise a late
        # interrupt could merge with the next request's in the edge-triggered PIC.
6:      cli
        mov irq_count, %eax
        cmp want_irqs, %eax
        jae 7f
        sti                             # sti; hlt: no interrupt is lost in between
        hlt
        jmp 6b
7:      sti
        movzwl USED+2, %eax             # the interrupt came after the used ring update
        cmp want_used, %eax
        jne 6b
        ret

irq_handler:
        push %eax
        mov VIRTIO+0x60, %eax           # InterruptStatus
        mov %eax, VIRTIO+0x64           # InterruptACK
        incl irq_count
        movb $0x20, %al
        out %al, $0xa0                  # EOI slave, then master
        out %al, $0x20
        pop %eax
        # Return without IRET: this host's KVM (kvm_pvm, see docs/KVM.md) emulates ring-0
        # code and its emulator has no protected-mode IRET.  Same-privilege frame:
        # EIP, CS, EFLAGS.  Restoring EFLAGS first is safe: a nested interrupt between
        # popf and ret returns here with the stack unchanged.
        pushl 8(%esp)
        popfl
        ret $8

        .include "interrupts.inc"

nodev:  mov $m_nodev, %esi
        call puts
        call reboot

        .align 4
irq_count: .long 0
want_used: .long 0
want_irqs: .long 0
m_read: .asciz "PEMU-BAREMETAL read: "
m_irqs: .asciz "PEMU-BAREMETAL irqs=0x"
m_status: .asciz " status=0x"
m_nodev: .asciz "PEMU-BAREMETAL no virtio-blk device\n"
nl:     .asciz "\n"
