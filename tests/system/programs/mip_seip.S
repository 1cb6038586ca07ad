# mip.SEIP is two things ORed: the bit M-mode software writes and the external
# interrupt controller's line.  csrrs/csrrc on mip must write back only the software
# bit (privileged spec, "Machine Interrupt Registers").  OpenSBI sets SSIP with
# csrs mip for every IPI; pemu used to write back the line's SEIP with it, latching
# a supervisor external interrupt that no PLIC claim could clear: Linux then took
# SEIs forever and never again its timer or IPIs (the -smp 2 "idle stall").
.include "common.inc"
.equ PLIC, 0x0c000000
.equ UART_IRQ, 10
.equ SEIP, 0x200
.equ SSIP, 0x2

.globl _start
_start:
    csrr t0, mhartid
    bnez t0, park
    li t0, PLIC + 4 * UART_IRQ
    li t1, 1
    sw t1, 0(t0)                # the UART's priority: 1
    li t0, PLIC + 0x2080        # context 1 (hart 0, S-mode): enable the UART
    li t1, 1 << UART_IRQ
    sw t1, 0(t0)
    li t0, PLIC + 0x201000
    sw zero, 0(t0)              # threshold 0
    li t0, UART
    li t1, 2
    sb t1, 1(t0)                # IER.THRI: the empty transmitter raises the line

    csrr t2, mip                # 1: the line shows in mip
    andi t2, t2, SEIP
    EXPECT t2, SEIP, 1
    csrsi mip, SSIP             # firmware posting an IPI to S-mode
    li t1, SSIP
    csrc mip, t1                # and taking it back
    li t0, UART
    sb zero, 1(t0)              # the UART lowers its line; claim and complete the
    li t0, PLIC + 0x201004      # PLIC's pending interrupt
    lw t1, 0(t0)
    EXPECT t1, UART_IRQ, 5
    sw t1, 0(t0)
    csrr t2, mip                # 2: nothing latched
    andi t2, t2, SEIP | SSIP
    EXPECT t2, 0, 2

    li t1, SEIP                 # 3: the software bit itself still works
    csrs mip, t1
    csrr t2, mip
    andi t2, t2, SEIP
    EXPECT t2, SEIP, 3
    csrc mip, t1
    csrr t2, mip
    andi t2, t2, SEIP
    EXPECT t2, 0, 4
    PASS

park:
    wfi
    j park

FINISH_ROUTINE
