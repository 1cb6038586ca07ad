# Synchronous traps, delegation to S, privilege changes, CLINT and PLIC interrupts,
# and an access fault on unmapped physical memory.
.include "common.inc"
.equ CLINT_MSIP, 0x2000000
.equ CLINT_MTIMECMP, 0x2004000
.equ CLINT_MTIME, 0x200bff8
.equ PLIC, 0x0c000000

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    # 1-2: an illegal instruction in M: mcause 2, mtval = the instruction bits
    .word 0xc0001073            # csrrw x0, cycle, x0: a write to a read-only CSR
    EXPECT s1, 2, 1
    li t5, 0xc0001073
    EXPECT s2, 0xc0001073, 2
    # 3: ecall from M
    ecall
    EXPECT s1, 11, 3
    # 4: misa reports RV64 with S and U
    csrr t0, misa
    srli t1, t0, 62
    EXPECT t1, 2, 4
    # 5: an unknown CSR is illegal
    csrr t0, 0x7c0
    EXPECT s1, 2, 5
    # 6-7: unmapped physical memory: a load access fault with the address in mtval
    # (0x18000000: nothing there on virt; 0x40000000.. is the PCIe window, whose
    # unclaimed addresses read all ones as on QEMU)
    li t0, 0x18000000
    ld t1, 0(t0)
    EXPECT s1, 5, 6
    EXPECT s2, 0x18000000, 7
    # 8-13: go to S (ecall from U delegated to S), then U, and back
    li t0, (1 << 8)
    csrw medeleg, t0
    ENTER_S s_code, strap
s_code:
    csrr t0, mstatus            # M CSR from S: illegal, not delegated -> M handler
    EXPECT s1, 2, 8
    li t0, (1 << 8)
    csrc sstatus, t0            # SPP = U
    la t0, u_code
    csrw sepc, t0
    sret
u_code:
    ecall                       # -> S handler (delegated), which does ecall -> M
back_in_m:
    EXPECT s4, 8, 9             # scause seen by S
    la t0, u_code
    EXPECT_EQ s5, t0, 10
    EXPECT s1, 9, 11            # mcause: ecall from S
    # 14-15: machine software interrupt from the CLINT
    li s1, 0
    li t0, (1 << 3)
    csrs mie, t0
    li t0, CLINT_MSIP
    li t1, 1
    sw t1, 0(t0)
    csrsi mstatus, 8            # MIE: taken right here
    nop
    li t0, 0x8000000000000003
    EXPECT s1, 0x8000000000000003, 14
    # 15: machine timer interrupt, waiting in WFI
    li s1, 0
    csrci mstatus, 8
    li t0, (1 << 7)
    csrw mie, t0
    li t0, CLINT_MTIME
    ld t1, 0(t0)
    addi t1, t1, 500            # 50 us from now
    li t0, CLINT_MTIMECMP
    sd t1, 0(t0)
2:  wfi                         # MIE is off: wakes up, traps once MIE is set below
    csrsi mstatus, 8
    csrci mstatus, 8
    beqz s1, 2b
    EXPECT s1, 0x8000000000000007, 15
    # 16-17: an external interrupt through the PLIC: the UART's THR-empty (source 10)
    csrci mstatus, 8
    li s1, 0
    li t0, PLIC + 4 * 10
    li t1, 1
    sw t1, 0(t0)                # priority 1
    li t0, PLIC + 0x2000
    li t1, (1 << 10)
    sw t1, 0(t0)                # enable for context 0 (hart 0 M)
    li t0, PLIC + 0x200000
    sw zero, 0(t0)              # threshold 0
    li t0, (1 << 11)
    csrw mie, t0
    li t0, UART
    li t1, 2
    sb t1, 1(t0)                # IER: THRE interrupt
3:  wfi
    csrsi mstatus, 8
    csrci mstatus, 8
    beqz s1, 3b
    EXPECT s1, 0x800000000000000b, 16
    EXPECT s7, 10, 17           # the claimed source
    PASS

.balign 4
mtrap:
    csrr s1, mcause
    csrr s2, mtval
    bltz s1, m_interrupt
    li t0, 9
    beq s1, t0, m_from_s
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
m_from_s:                       # ecall from S: continue in M at after_deleg
    li t0, (3 << 11)
    csrs mstatus, t0            # MPP = M
    la t0, back_in_m
    csrw mepc, t0
    mret
m_interrupt:
    slli t0, s1, 1
    srli t0, t0, 1
    li t1, 3
    beq t0, t1, m_soft
    li t1, 7
    beq t0, t1, m_timer
    li t0, PLIC + 0x200004      # claim
    lw s7, 0(t0)
    li t1, UART
    sb zero, 1(t1)              # IER = 0: the line drops
    sw s7, 0(t0)                # complete
    mret
m_soft:
    li t0, CLINT_MSIP
    sw zero, 0(t0)
    mret
m_timer:
    li t0, CLINT_MTIMECMP
    li t1, -1
    sd t1, 0(t0)
    mret

.balign 4
strap:
    csrr s4, scause
    csrr s5, sepc
    ecall                       # to M (cause 9)

FINISH_ROUTINE
