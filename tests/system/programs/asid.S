# ASIDs (Sv39): satp keeps a 16-bit ASID, switching address spaces needs no fence,
# and sfence.vma with rs2 (one ASID) or rs1 (one page, every ASID) makes a changed PTE
# visible.  Two address spaces, A (ASID 1) and B (ASID 2), share a global 1 GiB
# identity leaf for the code and map VA 0x1000 (data) and 0x4000 (code) to their own
# pages, and VA 0x6000 to one global code page (G: the same in both; pemu finds its
# blocks across address spaces until an sfence.vma that reaches global mappings).
# S-mode runs the checks; any trap to M is a failure (check 99).
.include "common.inc"
.equ LEAF_RW, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
.equ SV39, 8
.equ ASID_A, 1
.equ ASID_B, 2

# one address space: root -> l1 -> l0; data and code pages at 0x1000 and 0x4000
.macro SPACE root, l1, l0, data, code
    li a1, 0x80000000
    SETPTE \root, 2, a1, LEAF_RW|PTE_X|PTE_G
    la a1, \l1
    SETPTE \root, 0, a1, PTE_V
    la a1, \l0
    SETPTE \l1, 0, a1, PTE_V
    li a1, UART
    SETPTE \l1, 128, a1, LEAF_RW
    li a1, FINISHER
    SETPTE \l0, 256, a1, LEAF_RW
    la a1, \data
    SETPTE \l0, 1, a1, LEAF_RW
    la a1, \code
    SETPTE \l0, 4, a1, PTE_V|PTE_X|PTE_A
    la a1, code_g1
    SETPTE \l0, 6, a1, PTE_V|PTE_X|PTE_A|PTE_G
.endm

# map VA 0x6000 of the space whose l0 table is given to the global code page
.macro REMAP_GLOBAL_CODE l0, page
    la t0, \l0
    la t1, \page
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, PTE_V|PTE_X|PTE_A|PTE_G
    sd t1, 48(t0)
.endm

# reg = satp value for root with asid
.macro SATP reg, root, asid
    la \reg, \root
    srli \reg, \reg, 12
    li t0, (SV39 << 60) | (\asid << 44)
    or \reg, \reg, t0
.endm

# remap VA 0x1000 of the space whose l0 table is given to page
.macro REMAP l0, page
    la t0, \l0
    la t1, \page
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, LEAF_RW
    sd t1, 8(t0)
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    SPACE root_a, l1_a, l0_a, data_a, code_a
    SPACE root_b, l1_b, l0_b, data_b, code_b
    SATP s10, root_a, ASID_A
    SATP s11, root_b, ASID_B
    # 1: all 16 ASID bits are writable
    li t1, (SV39 << 60) | (0xFFFF << 44)
    csrw satp, t1
    csrr t2, satp
    EXPECT_EQ t1, t2, 1
    csrw satp, s10
    sfence.vma
    PMP_OPEN
    li t0, (3 << 11)            # enter S
    csrc mstatus, t0
    li t0, (1 << 11)
    csrs mstatus, t0
    la t0, s_code
    csrw mepc, t0
    mret

s_code:
    li a2, 0x1000
    li a3, 0x4000
    li a4, ASID_A
    li a5, ASID_B
    # 2-9: back and forth without fences, data and code follow the address space
    li s3, 2
1:  ld t1, 0(a2)
    EXPECT t1, 0xAAAA, 2
    jalr ra, 0(a3)
    EXPECT a0, 0x4141, 3
    csrw satp, s11
    ld t1, 0(a2)
    EXPECT t1, 0xBBBB, 4
    jalr ra, 0(a3)
    EXPECT a0, 0x4242, 5
    csrw satp, s10
    addi s3, s3, -1
    bnez s3, 1b
    # 10: A's page changes while B runs; sfence.vma x0, ASID_A orders it for A
    csrw satp, s11
    REMAP l0_a, data_c
    sfence.vma zero, a4
    ld t1, 0(a2)
    EXPECT t1, 0xBBBB, 10
    csrw satp, s10
    ld t1, 0(a2)
    EXPECT t1, 0xCCCC, 10
    # 11: one page of one ASID: sfence.vma rs1, rs2 while A runs
    REMAP l0_a, data_a
    sfence.vma a2, a4
    ld t1, 0(a2)
    EXPECT t1, 0xAAAA, 11
    # 12: one page of every ASID: B's page changes, sfence.vma rs1, x0 from A
    REMAP l0_b, data_c
    sfence.vma a2, zero
    csrw satp, s11
    ld t1, 0(a2)
    EXPECT t1, 0xCCCC, 12
    # 13: a store through B's mapping lands in data_c, A still sees data_a
    li t1, 0x5151
    sd t1, 0(a2)
    csrw satp, s10
    ld t1, 0(a2)
    EXPECT t1, 0xAAAA, 13
    la t0, data_c
    ld t1, 0(t0)
    EXPECT t1, 0x5151, 13
    # 14: sfence.vma x0, x0 flushes every ASID
    REMAP l0_b, data_b
    sfence.vma
    csrw satp, s11
    ld t1, 0(a2)
    EXPECT t1, 0xBBBB, 14
    # 15-16: global code runs in both spaces, then is remapped in both: sfence.vma
    # rs1, x0 reaches global mappings, so both spaces run the new page
    li a6, 0x6000
    jalr ra, 0(a6)
    EXPECT a0, 0x6161, 15
    csrw satp, s10
    jalr ra, 0(a6)
    EXPECT a0, 0x6161, 15
    REMAP_GLOBAL_CODE l0_a, code_g2
    REMAP_GLOBAL_CODE l0_b, code_g2
    sfence.vma a6, zero
    jalr ra, 0(a6)
    EXPECT a0, 0x6262, 16
    csrw satp, s11
    jalr ra, 0(a6)
    EXPECT a0, 0x6262, 16
    PASS

.balign 4
mtrap:                          # nothing here should trap
    li a0, (99 << 16) | 0x3333
    j finish

FINISH_ROUTINE

.balign 4096
code_a:
    li a0, 0x4141
    ret
.balign 4096
code_b:
    li a0, 0x4242
    ret
.balign 4096
code_g1:
    li a0, 0x6161
    ret
.balign 4096
code_g2:
    li a0, 0x6262
    ret
.data
.balign 4096
data_a: .dword 0xAAAA
.balign 4096
data_b: .dword 0xBBBB
.balign 4096
data_c: .dword 0xCCCC
.balign 4096
root_a: .zero 4096
l1_a: .zero 4096
l0_a: .zero 4096
root_b: .zero 4096
l1_b: .zero 4096
l0_b: .zero 4096
