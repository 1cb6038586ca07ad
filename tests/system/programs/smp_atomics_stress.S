# HARTS harts (at most 8; run with -smp HARTS) each add 1 to four shared counters ITERS times,
# each counter its own way; hart 0 then checks the exact totals (HARTS * ITERS):
#   check 1  amoadd.d on counter_amo
#   check 2  an lr.d/sc.d retry loop on counter_lrsc
#   check 3  plain ld/addi/sd on counter_plain, under a test-and-set spinlock taken
#            with lr.w/sc.w and released with amoswap.w
#   check 4  plain lw/addi/sw on counter_ticket, under a ticket lock like Linux's:
#            taken with amoadd.w on the ticket half, released with a plain sh on the
#            owner half (an AMO that is not atomic against that store loses it)
#   check 5  a ticket-lock waiter gave up: the owner half never reached its ticket
#   check 6  the harts did not all start or finish in time
#   check 7  amoadd.w in a tight loop for HOT_TICKS of mtime, all harts starting
#            together, each counting its own: the total must be the sum of the
#            counts (where a non-atomic AMO loses increments first)
# With MTTCG every hart runs on its own host thread, so a non-atomic AMO or SC
# loses increments (or a ticket release) and one of the checks fails.
.include "common.inc"
.ifndef HARTS
.equ HARTS, 4
.endif
.ifndef ITERS
.equ ITERS, 3000
.endif
.ifndef HOT_TICKS
.equ HOT_TICKS, 3000000         # 0.3 s of mtime (10 MHz)
.endif
.equ CLINT_MTIME, 0x200bff8
.equ SPIN_LIMIT, 0x10000000     # ~a second or more of spinning: the lock is lost

.globl _start
_start:
    csrr s0, mhartid
    li t0, HARTS
    bgeu s0, t0, park           # harts beyond HARTS take no part
    la s1, counters
    addi a2, s1, 8              # atomics take no offset: an address register each
    addi a3, s1, 16
    addi a5, s1, 32
    addi a7, s1, 48
    # 0: all harts start together (a barrier), then amoadd in a tight loop: with
    # parallel threads a non-atomic AMO loses increments here within milliseconds
    li t0, 1
    addi t1, s1, 56
    amoadd.d zero, t0, (t1)
    li t4, SPIN_LIMIT
6:  ld t2, 56(s1)
    li t3, HARTS
    beq t2, t3, 7f
    addi t4, t4, -1
    bnez t4, 6b
    li a0, (6 << 16) | 0x3333
    j finish
7:  addi t1, s1, 64             # for HOT_TICKS of mtime: amoadd.w 1, counted in s2
    li t5, CLINT_MTIME
    ld s4, 0(t5)
    li t2, HOT_TICKS
    add s4, s4, t2              # this hart's deadline
    li s2, 0
8:  li t3, 256
9:  amoadd.w zero, t0, (t1)
    addi s2, s2, 1
    addi t3, t3, -1
    bnez t3, 9b
    ld t2, 0(t5)                # mtime, every 256 AMOs
    bltu t2, s4, 8b
    slli t2, s0, 3
    add t2, t2, s1
    sd s2, 72(t2)               # what this hart added
    li s2, ITERS
loop:
    # 1: amoadd
    li t0, 1
    amoadd.d zero, t0, (s1)
    # 2: lr/sc increment
1:  lr.d t0, (a2)
    addi t0, t0, 1
    sc.d t1, t0, (a2)
    bnez t1, 1b
    # 3: test-and-set spinlock (lr/sc acquire, amoswap release) around a plain add
2:  lr.w.aq t0, (a3)
    bnez t0, 2b
    li t1, 1
    sc.w t1, t1, (a3)
    bnez t1, 2b
    ld t0, 24(s1)
    addi t0, t0, 1
    sd t0, 24(s1)
    amoswap.w.rl zero, zero, (a3)
    # 4: ticket lock: next ticket in bits 31:16, owner in bits 15:0
    li t1, 1 << 16
    amoadd.w.aq t0, t1, (a5)
    srli t0, t0, 16
    li t3, 0xffff
    and t0, t0, t3              # my ticket
    li t4, SPIN_LIMIT
3:  lhu t2, 32(s1)
    beq t2, t0, 4f
    addi t4, t4, -1
    bnez t4, 3b
    li a0, (5 << 16) | 0x3333
    j finish
4:  fence r, rw
    lw t2, 40(s1)
    addi t2, t2, 1
    sw t2, 40(s1)
    fence rw, w
    addi t2, t0, 1
    sh t2, 32(s1)               # release: the owner half only
    addi s2, s2, -1
    bnez s2, loop

    li t0, 1
    amoadd.d zero, t0, (a7)   # this hart is done
    bnez s0, park
    li t4, SPIN_LIMIT
5:  ld t0, 48(s1)
    li t1, HARTS
    beq t0, t1, check
    addi t4, t4, -1
    bnez t4, 5b
    li a0, (6 << 16) | 0x3333
    j finish

check:
    li s3, HARTS * ITERS
    ld t0, 0(s1)
    EXPECT_EQ t0, s3, 1
    ld t0, 8(s1)
    EXPECT_EQ t0, s3, 2
    ld t0, 24(s1)
    EXPECT_EQ t0, s3, 3
    lwu t0, 40(s1)
    EXPECT_EQ t0, s3, 4
    li s3, 0                    # the sum of what the harts say they added
    li t1, 0
10: slli t2, t1, 3
    add t2, t2, s1
    ld t2, 72(t2)
    add s3, s3, t2
    addi t1, t1, 1
    li t2, HARTS
    bltu t1, t2, 10b
    li t2, 0xffffffff
    and s3, s3, t2
    lwu t0, 64(s1)
    EXPECT_EQ t0, s3, 7
    PASS

park:
    wfi
    j park

FINISH_ROUTINE

.data
.align 6
counters:
    .dword 0                    # 0: amoadd
    .dword 0                    # 8: lr/sc
    .word 0, 0                  # 16: spinlock
    .dword 0                    # 24: under the spinlock
    .word 0, 0                  # 32: ticket lock (owner | next << 16)
    .dword 0                    # 40: under the ticket lock
    .dword 0                    # 48: harts done
    .dword 0                    # 56: harts started
    .dword 0                    # 64: amoadd.w in a tight loop
    .dword 0, 0, 0, 0, 0, 0, 0, 0  # 72: how many each hart added there
