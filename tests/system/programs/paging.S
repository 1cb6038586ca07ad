# Sv39/Sv48/Sv57 (assemble with --defsym LEVELS=3|4|5): permissions, SUM on and off, MXR,
# A/D updates, sfence.vma, and satp's WARL behaviour.  S-mode runs identity-mapped
# through a 1 GiB leaf; test pages live at low virtual addresses.  All faults go to M,
# which records mcause/mtval and returns to the instruction after (or to ra for
# instruction faults).
.include "common.inc"
.equ MODE, LEVELS + 5           # satp mode: 8 Sv39, 9 Sv48, 10 Sv57

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    # build the tables: l2[2] = 1 GiB identity leaf for 0x80000000, l2[0] -> l1 -> l0
    li a1, 0x80000000
    SETPTE l2, 2, a1, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
    la a1, l1
    SETPTE l2, 0, a1, PTE_V
    la a1, l0
    SETPTE l1, 0, a1, PTE_V
    la a1, page_ro
    SETPTE l0, 1, a1, PTE_V|PTE_R|PTE_A|PTE_D                # 0x1000: read-only
    la a1, page_user
    SETPTE l0, 2, a1, PTE_V|PTE_R|PTE_W|PTE_U|PTE_A|PTE_D    # 0x2000: user RW
    la a1, page_ad
    SETPTE l0, 3, a1, PTE_V|PTE_R|PTE_W                      # 0x3000: A/D clear
    la a1, page_xo
    SETPTE l0, 4, a1, PTE_V|PTE_X|PTE_A                      # 0x4000: execute-only
    li a1, UART                 # the UART and the finisher stay reachable from S
    SETPTE l1, 128, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    li a1, FINISHER
    SETPTE l0, 256, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    la a1, l2                   # the root: l2 for Sv39, else a chain of index-0 tables
.if LEVELS >= 4
    SETPTE l3, 0, a1, PTE_V
    la a1, l3
.endif
.if LEVELS >= 5
    SETPTE l4, 0, a1, PTE_V
    la a1, l4
.endif
    srli a1, a1, 12
    li t0, MODE
    slli t0, t0, 60
    or s9, a1, t0               # s9 = satp value
    # 1: an unsupported mode (11) is ignored entirely
    li t0, 11
    slli t0, t0, 60
    csrw satp, t0
    csrr t1, satp
    EXPECT t1, 0, 1
    # 2: the mode under test is accepted
    csrw satp, s9
    csrr t1, satp
    EXPECT_EQ t1, s9, 2
    sfence.vma
    # PMP: give S-mode all memory (NAPOT over everything)
    PMP_OPEN
    # enter S
    li t0, (3 << 11)
    csrc mstatus, t0
    li t0, (1 << 11)
    csrs mstatus, t0
    la t0, s_code
    csrw mepc, t0
    mret

s_code:
    # 3: a read of the read-only page works
    li a2, 0x1000
    ld t1, 0(a2)
    EXPECT t1, 0x1111, 3
    # 4-5: a store to it is a store page fault with the address
    li s1, 0
    sd t1, 0(a2)
    EXPECT s1, 15, 4
    EXPECT s2, 0x1000, 5
    # 6: a user page without SUM: load page fault
    li s1, 0
    li a2, 0x2000
    ld t1, 0(a2)
    EXPECT s1, 13, 6
    # 7: with SUM it reads
    li t0, (1 << 18)
    csrs sstatus, t0
    li s1, 0
    ld t1, 0(a2)
    EXPECT s1, 0, 7
    EXPECT t1, 0x2222, 8
    csrc sstatus, t0
    # 20: without SUM again it faults again (the SUM toggles are inline: new flags)
    li s1, 0
    ld t1, 0(a2)
    EXPECT s1, 13, 20
    # 9-10: an unmapped page
    li s1, 0
    li a2, 0x5000
    lw t1, 0(a2)
    EXPECT s1, 13, 9
    EXPECT s2, 0x5000, 10
    # 11-12: A and D are set by the store
    li a2, 0x3000
    li t1, 77
    sd t1, 0(a2)
    ld t1, 0(a2)
    EXPECT t1, 77, 11
    la t0, l0
    ld t1, 24(t0)
    andi t1, t1, PTE_A|PTE_D
    EXPECT t1, PTE_A|PTE_D, 12
    # 13: execute-only page: calling into it works
    li a2, 0x4000
    jalr ra, 0(a2)
    EXPECT a0, 0x4444, 13
    # 14: reading it faults without MXR
    li s1, 0
    lw t1, 0(a2)
    EXPECT s1, 13, 14
    # 15: with MXR it reads
    li t0, (1 << 19)
    csrs sstatus, t0
    li s1, 0
    lw t1, 0(a2)
    EXPECT s1, 0, 15
    csrc sstatus, t0
    # 16-17: executing the read-only page: instruction page fault
    li s1, 0
    li a2, 0x1000
    jalr ra, 0(a2)
    EXPECT s1, 12, 16
    EXPECT s2, 0x1000, 17
    # 18: after remapping 0x1000 to the user page (and sfence.vma), reads see it
    la t0, l0
    la t1, page_user
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, PTE_V|PTE_R|PTE_A|PTE_D
    sd t1, 8(t0)
    li a2, 0x1000
    sfence.vma a2, zero
    ld t1, 0(a2)
    EXPECT t1, 0x2222, 18
    # 19: a non-canonical address faults
    li s1, 0
    li a2, 0x4000000000000000
    ld t1, 0(a2)
    EXPECT s1, 13, 19
    PASS

.balign 4
mtrap:
    csrr s1, mcause
    csrr s2, mtval
    li t0, 12
    beq s1, t0, 1f
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret
1:  csrw mepc, ra               # instruction fault: resume at the caller
    mret

FINISH_ROUTINE

.balign 4096
page_xo:
    li a0, 0x4444
    ret
.data
.balign 4096
page_ro:   .dword 0x1111
.balign 4096
page_user: .dword 0x2222
.balign 4096
page_ad:   .dword 0
.balign 4096
l0: .zero 4096
l1: .zero 4096
l2: .zero 4096
l3: .zero 4096
l4: .zero 4096
