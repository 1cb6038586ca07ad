# The M-mode CSRs that translated code reads and writes in state slots (csr_inline.py):
# mscratch, mepc, mcause, mtval, and reads of mhartid, which OpenSBI's trap handler
# uses on every IPI, remote fence and SBI call.  Two harts (-smp 2).  Checks, hart 0:
#   1-2  csrrw mscratch with rd == rs swaps
#   3-4  csrrs/csrrci on mscratch: old value, then set/cleared bits
#   5    mepc keeps bit 1 (IALIGN 16; QEMU 7.2 keeps a written bit 0 too, so bit 0
#        is not checked)
#   6    mcause and mtval keep what is written
#   7    mhartid reads 0 on hart 0 (csrr, csrrs x0, csrrsi 0)
#   8    ... and 1 on hart 1 (which stores what it read)
#   9    csrw mhartid is an illegal instruction (read-only) and changes nothing
#   10   the trap of 9 as Python wrote it: mcause 2, mepc the csrw (the handler's
#        return moved it past), read inline
#   11   mret to an mepc written inline (the mret helper reads the slot)
#   12   csrr mscratch from S-mode is an illegal instruction (to M)
#   13   mscratch survives the S-mode round trip (Python's view of it: the trap)
#   14-16 csrr mstatus in M-mode (inline): SD set with FS Dirty, clear with FS and VS
#        Off, MPP as written
.include "common.inc"
.equ CLINT_MTIME, 0x200bff8

.globl _start
_start:
    csrr t0, mhartid
    bnez t0, other_hart
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    li t0, 0x1234               # 1-2
    csrw mscratch, t0
    li t1, 0x5678
    csrrw t1, mscratch, t1
    EXPECT t1, 0x1234, 1
    csrr t1, mscratch
    EXPECT t1, 0x5678, 2
    li t0, 0xF00F               # 3-4
    csrrs t1, mscratch, t0
    EXPECT t1, 0x5678, 3
    csrrci t1, mscratch, 0xF
    csrr t1, mscratch
    li t2, 0xF670
    EXPECT_EQ t1, t2, 4
    li t0, 0x80001006           # 5
    csrw mepc, t0
    csrr t1, mepc
    EXPECT_EQ t1, t0, 5
    li t0, 0x77                 # 6
    csrw mcause, t0
    li t0, 0x99
    csrw mtval, t0
    csrr t1, mcause
    csrr t2, mtval
    add t1, t1, t2
    EXPECT t1, 0x110, 6
    csrr t1, mhartid            # 7
    csrrs t2, mhartid, x0
    or t1, t1, t2
    csrrsi t2, mhartid, 0
    or t1, t1, t2
    EXPECT t1, 0, 7
    li t3, CLINT_MTIME          # 8: wait for hart 1, at most 5 s
    ld t4, 0(t3)
    li t5, 50000000
    add t4, t4, t5
    la t0, hart1_id
1:  ld t1, 0(t0)
    bgez t1, 2f
    ld t5, 0(t3)
    bltu t5, t4, 1b
2:  EXPECT t1, 1, 8
    li s1, 0                    # 9-10
    li t0, 5
bad_write:
    csrw mhartid, t0            # traps (mtrap records mcause, mepc in s1, s2)
    EXPECT s1, 2, 9
    csrr t1, mhartid
    EXPECT t1, 0, 9
    la t0, bad_write
    EXPECT_EQ s2, t0, 10
    csrr t1, mcause
    EXPECT t1, 2, 10
    csrr t1, mepc
    addi t0, t0, 4
    EXPECT_EQ t1, t0, 10
    la t0, after_mret           # 11: MPP = M, mepc written inline
    li t1, (3 << 11)
    csrs mstatus, t1
    csrw mepc, t0
    mret
fail_11:
    li a0, (11 << 16) | 0x3333
    j finish
after_mret:
    li t0, 0xABC                # 12-13
    csrw mscratch, t0
    li s1, 0
    la t0, s_code
    li t1, (3 << 11)
    csrc mstatus, t1
    li t1, (1 << 11)            # MPP = S
    csrs mstatus, t1
    csrw mepc, t0
    mret
s_code:
    csrr t1, mscratch           # illegal from S: mtrap skips it
    ecall                       # back to M (mtrap: cause 9 returns to m_again)
m_again:
    EXPECT s1, 2, 12
    csrr t1, mscratch
    EXPECT t1, 0xABC, 13
    li t0, (3 << 13)            # 14: FS Dirty: SD reads set
    csrs mstatus, t0
    csrr t1, mstatus
    srli t1, t1, 63
    EXPECT t1, 1, 14
    li t0, (3 << 13) | (3 << 9) # 15: FS and VS Off: SD reads clear
    csrc mstatus, t0
    csrr t1, mstatus
    srli t1, t1, 63
    EXPECT t1, 0, 15
    li t0, (3 << 11)            # 16: MPP = S as written, read inline
    csrc mstatus, t0
    li t0, (1 << 11)
    csrs mstatus, t0
    csrrs t1, mstatus, x0
    li t0, (3 << 11)
    and t1, t1, t0
    EXPECT t1, (1 << 11), 16
    PASS

other_hart:                     # hart 1: tell hart 0 what mhartid reads here, then wait
    csrr t1, mhartid
    csrrs t2, mhartid, x0
    and t1, t1, t2
    la t0, hart1_id
    sd t1, 0(t0)
1:  wfi
    j 1b

.balign 4
mtrap:
    csrr t0, mcause
    li t1, 9                    # ecall from S: continue in M-mode at m_again
    beq t0, t1, 2f
    mv s1, t0
    csrr s2, mepc
    MRET_PAST_INSN
2:  li t0, (3 << 11)            # MPP = M
    csrs mstatus, t0
    la t0, m_again
    csrw mepc, t0
    mret

FINISH_ROUTINE

.data
.balign 8
hart1_id: .dword -1
