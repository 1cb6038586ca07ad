# A heartbeat for save/restore/migration tests (virt, -bios none, M-mode).
# Every TICK_PERIOD of mtime it prints "T" and the tick number as 8 hex digits; the
# number lives in s0 (CPU state) and in RAM (``counter``).  Between ticks it keeps
# writing mtime into a 64 KiB buffer, so RAM is always being dirtied.
.include "common.inc"
.equ MTIME, 0x200bff8
.ifndef TICK_PERIOD
.equ TICK_PERIOD, 2000000          # 0.2 s at 10 MHz
.endif
.equ BUF_MASK, 0xfff8

.global _start
_start:
    li s0, 0
    la s2, counter
    li s3, MTIME
    la s4, buffer
    li s5, TICK_PERIOD
    ld s1, 0(s3)
    add s1, s1, s5
loop:
    ld t1, 0(s3)
    li t2, BUF_MASK
    and t2, t1, t2
    add t2, t2, s4
    sd t1, 0(t2)                    # dirty the buffer
    bltu t1, s1, loop
    add s1, s1, s5
    ld t3, 0(s2)
    bne t3, s0, broken              # RAM and register must agree
    addi s0, s0, 1
    sd s0, 0(s2)
    li t0, UART
    li t1, 'T'
    sb t1, 0(t0)
    li t4, 28
1:  srl t1, s0, t4
    andi t1, t1, 15
    li t5, 10
    blt t1, t5, 2f
    addi t1, t1, 'a' - 10 - '0'
2:  addi t1, t1, '0'
    sb t1, 0(t0)
    addi t4, t4, -4
    bgez t4, 1b
    li t1, '\n'
    sb t1, 0(t0)
    j loop
broken:
    li a0, (7 << 16) | 0x3333
    j finish
    FINISH_ROUTINE

.data
.align 3
counter: .dword 0
.align 12
buffer: .space 0x10000
