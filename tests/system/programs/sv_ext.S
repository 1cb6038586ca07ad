# The RVA supervisor extensions under Sv39 (run with -cpu max, or -cpu rva22s64 and
# --defsym SVADE=1): Svnapot, Svpbmt with menvcfg.PBMTE, Svade/Svadu (A/D faults or
# hardware updates, menvcfg.ADUE), Svinval, and the menvcfg permission checks of
# Zicbom/Zicboz with cbo.zero's block, and Smstateen's gating of senvcfg (max only).
# S-mode runs identity-mapped through a 1 GiB leaf; faults go to M, which records
# mcause/mtval in s1/s2 and skips the instruction.  An ecall from S asks M to enable the
# cache-block operations in menvcfg (and everything in mstateen0).
.include "common.inc"
.option arch, +zicbom, +zicboz, +svinval
.equ RWAD, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
.equ MENVCFG_CBO, (3 << 4) | (1 << 6) | (1 << 7)    # CBIE=11, CBCFE, CBZE
.equ MENVCFG_PBMTE, 1 << 62
.equ MENVCFG_ADUE, 1 << 61
.ifndef SVADE
.equ SVADE, 0
.endif

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li a1, 0x80000000
    SETPTE l2, 2, a1, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
    la a1, l1
    SETPTE l2, 0, a1, PTE_V
    la a1, l0
    SETPTE l1, 0, a1, PTE_V
    li a1, UART
    SETPTE l1, 128, a1, RWAD
    li a1, FINISHER
    SETPTE l0, 256, a1, RWAD
    # VA 0x10000-0x1ffff: one 64 KiB NAPOT mapping of napot_region (16 PTEs, N set,
    # ppn[3:0] = 1000)
    la a1, napot_region
    srli t3, a1, 12
    ori t3, t3, 0x8
    slli t3, t3, 10
    li t0, RWAD | (1 << 63)
    or t3, t3, t0
    la t0, l0 + 16 * 8
    li a3, 16
1:  sd t3, 0(t0)
    addi t0, t0, 8
    addi a3, a3, -1
    bnez a3, 1b
    la a1, page_nc                   # 0x2000: PBMT = NC (1)
    SETPTE l0, 2, a1, RWAD | (1 << 61)
    la a1, page_io                   # 0x3000: PBMT = 3, reserved: a page fault
    SETPTE l0, 3, a1, RWAD | (3 << 61)
    la a1, page_ad                   # 0x4000: A and D clear
    SETPTE l0, 4, a1, PTE_V|PTE_R|PTE_W
    la a1, l2
    srli a1, a1, 12
    li t0, 8 << 60
    or t0, t0, a1
    csrw satp, t0
    sfence.vma
    PMP_OPEN
    # 20: with Svpbmt, PBMTE is set after reset (old firmware never sets it)
    csrr t1, menvcfg
    li t0, MENVCFG_PBMTE
    and t1, t1, t0
    EXPECT_EQ t1, t0, 20
    csrc menvcfg, t0                 # (set again by check 2)
    # 1: with Svadu, ADUE is set after reset; 2: PBMTE and ADUE are writable
    csrr t1, menvcfg
    li t0, MENVCFG_ADUE
    and t1, t1, t0
.if SVADE
    EXPECT t1, 0, 1
.else
    EXPECT_EQ t1, t0, 1
.endif
    li t0, MENVCFG_PBMTE
    csrs menvcfg, t0
    csrr t1, menvcfg
    and t1, t1, t0
    EXPECT_EQ t1, t0, 2
.if !SVADE                           # -cpu max: Smstateen keeps SE0 and ENVCFG only
    li t0, -1
    csrw 0x30c, t0                   # mstateen0
    csrr t1, 0x30c
    li t2, 3 << 62
    EXPECT_EQ t1, t2, 17
    csrw 0x30c, zero
.endif
    ENTER_S s_code, mtrap

s_code:
    # 3-4: the NAPOT mapping: VA 0x15008 is napot_region + 0x5008, in both halves
    li a2, 0x15008
    ld t1, 0(a2)
    EXPECT t1, 0x5a5a, 3
    li a2, 0x1fff8
    ld t1, 0(a2)
    EXPECT t1, 0xa5a5, 4
    # 5: PBMT = NC maps normally with PBMTE set
    li s1, 0
    li a2, 0x2000
    ld t1, 0(a2)
    EXPECT s1, 0, 5
    EXPECT t1, 0x2222, 6
    # 7: PBMT = 3 is reserved: load page fault
    li a2, 0x3000
    ld t1, 0(a2)
    EXPECT s1, 13, 7
    # 8: A clear: Svade faults, Svadu (ADUE=1) sets it
    li s1, 0
    li a2, 0x4000
    ld t1, 0(a2)
.if SVADE
    EXPECT s1, 13, 8
.else
    EXPECT s1, 0, 8
    la t0, l0 + 4 * 8
    ld t1, 0(t0)
    andi t1, t1, PTE_A
    EXPECT t1, PTE_A, 9
.endif
    # 10: Svinval's instructions run in S-mode
    li s1, 0
    sfence.w.inval
    sinval.vma x0, x0
    sfence.inval.ir
    EXPECT s1, 0, 10
    # 11-12: cbo.zero and cbo.clean are illegal while menvcfg disables them
    la a3, cbo_block + 72            # inside the second 64-byte block
    cbo.zero (a3)
    EXPECT s1, 2, 11
    li s1, 0
    cbo.clean (a3)
    EXPECT s1, 2, 12
    # 18: senvcfg from S needs mstateen0.ENVCFG with Smstateen (max), not without
    li s1, 0
    csrr t1, senvcfg
.if SVADE
    EXPECT s1, 0, 18
.else
    EXPECT s1, 2, 18
.endif
    # 13-15: enabled (ecall: M sets CBIE/CBCFE/CBZE and mstateen0), cbo.zero clears
    # exactly the block
    ecall
    li s1, 0
    csrr t1, senvcfg                 # 19: now S may use senvcfg (and sstateen0, which
.if !SVADE                           # only a hart with Smstateen has)
    csrr t1, 0x10c
.endif
    EXPECT s1, 0, 19
    li s1, 0
    cbo.zero (a3)
    cbo.flush (a3)
    cbo.inval (a3)
    EXPECT s1, 0, 13
    la a4, cbo_block
    ld t1, 56(a4)
    EXPECT t1, 0x77, 14
    ld t1, 64(a4)
    ld t2, 120(a4)
    or t1, t1, t2
    ld t2, 128(a4)
    EXPECT t1, 0, 15
    EXPECT t2, 0x77, 16
    PASS

.align 2
mtrap:
    csrr t0, mcause
    li t1, 9                         # ecall from S: enable the cache-block operations
    bne t0, t1, 1f
    li t1, MENVCFG_CBO
    csrs menvcfg, t1
.if !SVADE
    li t1, -1
    csrw 0x30c, t1
.endif
    j 2f
1:  mv s1, t0
    csrr s2, mtval
2:  csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret

FINISH_ROUTINE

.data
.balign 65536
napot_region: .zero 0x5008
    .dword 0x5a5a
    .zero 0x10000 - 0x5008 - 16
    .dword 0xa5a5
.balign 4096
page_nc: .dword 0x2222
.balign 4096
page_io: .dword 0x3333
.balign 4096
page_ad: .dword 0x4444
.balign 4096
cbo_block: .fill 24, 8, 0x77
.balign 4096
l0: .zero 4096
l1: .zero 4096
l2: .zero 4096
