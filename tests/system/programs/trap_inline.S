# The system call's round trip, which translated code does itself in the common case
# (target/riscv/trap_inline.py): ecall from U delegated to S, and sret from S; and the
# cases that must stay with the helper or the exception.  Every S trap goes to strap,
# which records scause/sepc/stval/sstatus in s5/s6/s7/s8 and jumps to s2.  Checks:
#   1-4   ecall from U (delegated): scause 8, sepc, stval 0, SPP=U, SPIE = U's SIE (1),
#         SIE clear, and the handler runs in S (sscratch readable)
#   5-6   sret to S with SPIE=0: SIE 0, SPIE 1, SPP U, still S (sscratch readable)
#   7     sret to U with SPIE=0: U runs with SIE 0 (the next ecall's SPIE is 0)
#   8-9   sret to U with FS Off: an FP instruction there is illegal (block flags: the
#         block ran before under FS Dirty, so a wrong flags slot would find it); with
#         FS Initial it runs and marks FS Dirty, seen after the next ecall
#   10    ecall from U into S with FS Off: FP in the handler is illegal (the same code
#         ran before with FS Dirty)
#   11-12 sret to S enabling SIE with a software interrupt pending: taken at once, with
#         sepc = the return address (nothing there ran)
#   13    sret to U with the interrupt pending and SIE clear: taken at once (S
#         interrupts are always on in U)
#   14    100 round trips ecall/sret, registers kept (sum of a0)
#   15-16 mstatus.TSR set: sret is an illegal instruction (delegated: scause 2, sepc)
#   17    ecall from U no longer delegated: M takes it (mcause 8, mepc), then PASS
.include "common.inc"
.option norelax
.equ SIE, 2
.equ SPIE, (1 << 5)
.equ SPP, (1 << 8)
.equ FS, (3 << 13)
.equ FS_INITIAL, (1 << 13)
.equ TSR, (1 << 22)
.equ SSIP, 2

# go to U (or S with SPP set) at \target with the given SPIE, through sret
.macro SRET_TO target, spp, spie
    li t0, SPP | SPIE
    csrc sstatus, t0
    li t0, (\spp * SPP) | (\spie * SPIE)
    csrs sstatus, t0
    la t0, \target
    csrw sepc, t0
    sret
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    li t0, (1 << 8) | (1 << 2)  # delegate ecall from U and illegal instructions
    csrw medeleg, t0
    li t0, SSIP                 # delegate S software interrupts
    csrw mideleg, t0
    li t0, FS                   # FS Dirty to start with
    csrs mstatus, t0
    ENTER_S s_code, strap

s_code:
    # 1-4: ecall from U with SIE set in U
    csrsi sstatus, SIE
    la s2, after_ecall1
    SRET_TO u_ecall1, 0, 1
after_ecall1:
    EXPECT s5, 8, 1
    la t0, u_ecall1
    EXPECT_EQ s6, t0, 2
    EXPECT s7, 0, 3
    li t0, SPP | SPIE | SIE
    and t1, s8, t0
    EXPECT t1, SPIE, 4
    csrr t0, sscratch           # an illegal instruction in U: we are in S

    # 5-6: sret to S with SPIE=0
    csrsi sstatus, SIE
    SRET_TO s_back, 1, 0
s_back:
    csrr t0, sstatus
    li t1, SPP | SPIE | SIE
    and t0, t0, t1
    EXPECT t0, SPIE, 5
    csrr t0, sscratch
    csrr t0, scause             # still the ecall's: no trap came in between
    EXPECT t0, 8, 6

    # 7: sret to U with SPIE=0
    la s2, after_ecall2
    SRET_TO u_ecall2, 0, 0
after_ecall2:
    li t0, SPIE | SIE
    and t1, s8, t0
    EXPECT t1, 0, 7

    # 8-9: u_fp runs first with FS Dirty (its block known under those flags), then
    # with FS Off (illegal: the block must be looked up under other flags), then with
    # FS Initial
    la s2, after_fp_dirty
    SRET_TO u_fp, 0, 0
after_fp_dirty:
    EXPECT s5, 8, 8
    li t0, FS
    csrc sstatus, t0
    la s2, after_fp_off
    SRET_TO u_fp, 0, 0
after_fp_off:
    EXPECT s5, 2, 8
    la t0, u_fp
    EXPECT_EQ s6, t0, 8
    li t0, FS_INITIAL
    csrs sstatus, t0
    la s2, after_fp_on
    la t0, u_fp                 # the same U code, run again under FS Initial
    csrw sepc, t0
    sret
after_fp_on:
    EXPECT s5, 8, 9
    li t0, FS
    and t1, s8, t0
    EXPECT_EQ t1, t0, 9

    # 10: ecall from U into S, FP in the handler's continuation: runs with FS Dirty
    # (s11 = 0), is illegal with FS Off (s11 = 1)
    li s11, 0
fs_pass:
    la s2, after_ecall3
    SRET_TO u_ecall1, 0, 1
after_ecall3:
    la s2, after_fp_s
s_fp:
    fmv.d.x f1, zero            # with FS Off: traps (illegal, from S, delegated)
    bnez s11, fp_ran
    li s11, 1
    li t0, FS
    csrc sstatus, t0
    j fs_pass
fp_ran:
    li a0, (10 << 16) | 0x3333
    j finish
after_fp_s:
    EXPECT s5, 2, 10
    la t0, s_fp
    EXPECT_EQ s6, t0, 10
    li t0, FS
    csrs sstatus, t0

    # 11-12: sret to S enables SIE with SSIP pending and enabled in sie
    csrci sstatus, SIE
    li t0, SSIP
    csrs sie, t0
    csrs sip, t0                # pending, not taken: SIE is clear in S
    li s4, 0
    la s2, after_irq1
    SRET_TO s_irq_target, 1, 1
s_irq_target:
    li s4, 1                    # must not run before the interrupt
    li a0, (11 << 16) | 0x3333
    j finish
after_irq1:
    li t0, (1 << 63) | 1
    EXPECT_EQ s5, t0, 11
    EXPECT s4, 0, 11
    la t0, s_irq_target
    EXPECT_EQ s6, t0, 12
    li t0, SSIP
    csrc sip, t0

    # 13: sret to U with SSIP pending and SIE clear
    csrci sstatus, SIE
    li t0, SSIP
    csrs sip, t0
    la s2, after_irq2
    SRET_TO u_irq_target, 0, 0
after_irq2:
    li t0, (1 << 63) | 1
    EXPECT_EQ s5, t0, 13
    la t0, u_irq_target
    EXPECT_EQ s6, t0, 13
    andi t1, s8, SPP
    EXPECT t1, 0, 13
    li t0, SSIP
    csrc sip, t0
    csrc sie, t0

    # 14: 100 round trips
    li s9, 0
    la s2, loop_handler
    SRET_TO u_loop, 0, 1
loop_handler:
    EXPECT s5, 8, 14
    beqz a0, loop_done
    add s9, s9, a0
    addi s6, s6, 4
    csrw sepc, s6
    sret
loop_done:
    li t0, 5050
    EXPECT_EQ s9, t0, 14

    # 15-16: TSR (set by M on request)
    li a7, 1
    ecall                       # from S: M sets mstatus.TSR
    la s2, after_tsr
s_sret:
    sret                        # illegal now
    li a0, (15 << 16) | 0x3333
    j finish
after_tsr:
    EXPECT s5, 2, 15
    la t0, s_sret
    EXPECT_EQ s6, t0, 16
    li a7, 2
    ecall                       # M clears TSR

    # 17: ecall from U not delegated
    li a7, 3
    ecall                       # M stops delegating ecall from U
    la s10, u_ecall1
    SRET_TO u_ecall1, 0, 1

# U-mode code
u_ecall1:
    ecall
    j u_stuck
u_ecall2:
    ecall
    j u_stuck
u_fp:
    fmv.d.x f2, zero            # illegal with FS Off; marks FS Dirty otherwise
    ecall
    j u_stuck
u_irq_target:
    j u_stuck                   # the interrupt comes first
u_loop:
    li a0, 100
1:  ecall                       # the handler adds a0 and returns past the ecall
    addi a0, a0, -1
    bnez a0, 1b
    ecall                       # a0 = 0: done
u_stuck:
    j u_stuck

.balign 4                       # stvec's base: its low two bits are the mode
strap:
    csrr s5, scause
    csrr s6, sepc
    csrr s7, stval
    csrr s8, sstatus
    jr s2

.balign 4
mtrap:
    csrr t0, mcause
    li t1, 9
    beq t0, t1, m_ecall_s
    li t1, 8
    beq t0, t1, m_ecall_u
    li a0, (30 << 16) | 0x3333
    j finish
m_ecall_s:                      # a7: 1 set TSR, 2 clear it, 3 keep ecall from U in M
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    li t1, 1
    bne a7, t1, 1f
    li t0, TSR
    csrs mstatus, t0
    mret
1:  li t1, 2
    bne a7, t1, 2f
    li t0, TSR
    csrc mstatus, t0
    mret
2:  li t0, (1 << 8)
    csrc medeleg, t0
    mret
m_ecall_u:
    csrr t0, mepc
    EXPECT_EQ t0, s10, 17
    csrr t0, mstatus
    li t1, (3 << 11)
    and t0, t0, t1
    EXPECT t0, 0, 17            # MPP = U
    PASS

FINISH_ROUTINE
