# The page walk's edge cases as S-mode loads and stores see them (assemble with
# --defsym LEVELS=3|4): each first access to a page misses the TLB, so on pemu's native
# backend it is what the native walker (backend/x86_64/page_walk.py) fills or declines
# to the Python walk; the same program on the python backend and on QEMU is the oracle.
#   1 GiB leaf (identity 0x80000000: code and data), 2 MiB leaf, a misaligned 2 MiB
#   leaf, A clear, D clear (the store must come back to set it), a user page from S
#   with and without SUM, an execute-only page with and without MXR, invalid, PBMT
#   (reserved without Svpbmt's menvcfg.PBMTE) and W-only PTEs, a page and a page table
#   that PMP denies to S, a read-only page, a PTE changed followed by sfence.vma with
#   an address, with an address and ASID, and without either, and a 2 MiB leaf changed
#   followed by sfence.vma of another 4 KiB piece of it.
# Faults go to M, which records mcause (s1) and mtval (s2) and skips the instruction.
.include "common.inc"
.equ RWAD, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
.equ MODE, LEVELS + 5           # satp mode: 8 Sv39, 9 Sv48
.equ BIG_A, 0x80600000          # two 2 MiB-aligned physical regions
.equ BIG_B, 0x80800000
.equ SSTATUS_SUM, 1 << 18
.equ SSTATUS_MXR, 1 << 19

# a load at virtual \va that must fault with \cause (mtval \va): checks n and n+1
.macro FAULTS va, cause, n
    li s1, 0
    li s2, 0
    li a2, \va
    ld t1, 0(a2)
    EXPECT s1, \cause, \n
    EXPECT s2, \va, \n + 1
.endm


.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    # known values in the two 2 MiB regions
    li a1, BIG_A + 0x1000
    li t1, 0xAAA1
    sd t1, 0(a1)
    li t0, 0x1FE000             # a1 is BIG_A + 0x1000
    add t0, t0, a1
    li t1, 0xAAA2
    sd t1, 0(t0)
    li a1, BIG_B + 0x1000
    li t1, 0xBBB1
    sd t1, 0(a1)
    # l2[2]: 1 GiB identity leaf over 0x80000000; l2[0] -> l1 -> l0
    li a1, 0x80000000
    SETPTE l2, 2, a1, RWAD|PTE_X
    la a1, l1
    SETPTE l2, 0, a1, PTE_V
    la a1, l0
    SETPTE l1, 0, a1, PTE_V
    la a1, page_a
    SETPTE l0, 1, a1, RWAD                              # 0x1000: remapped below
    la a1, page_ad
    SETPTE l0, 2, a1, PTE_V|PTE_R|PTE_W                 # 0x2000: A and D clear
    la a1, page_d
    SETPTE l0, 3, a1, PTE_V|PTE_R|PTE_W|PTE_A           # 0x3000: D clear
    la a1, page_user
    SETPTE l0, 4, a1, RWAD|PTE_U                        # 0x4000: user page
    la a1, page_xo
    SETPTE l0, 5, a1, PTE_V|PTE_X|PTE_A                 # 0x5000: execute-only
    la a1, page_a
    SETPTE l0, 6, a1, PTE_R|PTE_W|PTE_A|PTE_D           # 0x6000: V clear
    la a1, page_a
    li a3, 1 << 61
    SETPTE l0, 7, a1, RWAD                              # 0x7000: PBMT=NC
    ld t1, 0(t0)                # t0: the PTE's address
    or t1, t1, a3
    sd t1, 0(t0)
    la a1, page_a
    SETPTE l0, 8, a1, PTE_V|PTE_W|PTE_A|PTE_D           # 0x8000: W without R
    la a1, pmp_page
    SETPTE l0, 9, a1, RWAD                              # 0x9000: PMP denies it
    la a1, page_ro
    SETPTE l0, 10, a1, PTE_V|PTE_R|PTE_A|PTE_D          # 0xa000: read-only
    li a1, BIG_A
    SETPTE l1, 1, a1, RWAD                              # 0x200000: 2 MiB
    li a1, BIG_A + 0x1000
    SETPTE l1, 2, a1, RWAD                              # 0x400000: misaligned 2 MiB
    la a1, pmp_table
    SETPTE l1, 3, a1, PTE_V                             # 0x600000: table PMP denies
    la a1, page_a
    SETPTE pmp_table, 0, a1, RWAD
    li a1, UART                 # the UART and the finisher stay reachable from S
    SETPTE l1, 128, a1, RWAD
    li a1, FINISHER
    SETPTE l0, 256, a1, RWAD
    la a1, l2                   # the root: l2 for Sv39, else l3 -> l2
.if LEVELS >= 4
    SETPTE l3, 0, a1, PTE_V
    la a1, l3
.endif
    srli a1, a1, 12
    li t0, MODE
    slli t0, t0, 60
    or t0, a1, t0
    csrw satp, t0
    sfence.vma
    # PMP: entry 0 denies S the two pages at pmp_page (NAPOT 8 KiB, no permissions),
    # entry 1 gives S everything else
    la t0, pmp_page
    srli t0, t0, 2
    ori t0, t0, (8192 >> 3) - 1
    csrw pmpaddr0, t0
    li t0, -1
    csrw pmpaddr1, t0
    li t0, (0x18) | (0x1f << 8)
    csrw pmpcfg0, t0
    ENTER_S s_code, mtrap

s_code:
    # 1-2: the 1 GiB identity leaf
    li s1, 0
    la a2, data_word
    ld t1, 0(a2)
    EXPECT s1, 0, 1
    EXPECT t1, 0x1234, 2
    # 3-6: the 2 MiB leaf, its second and its last 4 KiB piece
    READS 0x201000, 0xAAA1, 3
    READS 0x3FF000, 0xAAA2, 5
    # 7-8: a misaligned 2 MiB leaf
    FAULTS 0x400000, 13, 7
    # 9-12: A clear: the load sets A (not D), a store then sets D
    READS 0x2000, 0x2222, 9
    la t0, l0
    ld t1, 2*8(t0)
    andi t1, t1, PTE_A|PTE_D
    EXPECT t1, PTE_A, 11
    li a2, 0x2000
    li t1, 0x2223
    sd t1, 0(a2)
    la t0, l0
    ld t1, 2*8(t0)
    andi t1, t1, PTE_A|PTE_D
    EXPECT t1, PTE_A|PTE_D, 12
    # 13-17: D clear: the load leaves D clear, the store that follows sets it
    READS 0x3000, 0x3333, 13
    la t0, l0
    ld t1, 3*8(t0)
    andi t1, t1, PTE_D
    EXPECT t1, 0, 15
    li a2, 0x3000
    li t1, 0x3334
    sd t1, 0(a2)
    la t0, l0
    ld t1, 3*8(t0)
    andi t1, t1, PTE_D
    EXPECT t1, PTE_D, 16
    la a2, page_d
    ld t1, 0(a2)
    EXPECT t1, 0x3334, 17
    # 18-25: a user page from S: a fault without SUM, a read and a write with it,
    # a fault again once SUM is clear
    FAULTS 0x4000, 13, 18
    li t0, SSTATUS_SUM
    csrs sstatus, t0
    READS 0x4000, 0x4444, 20
    li t1, 0x4445
    sd t1, 0(a2)
    EXPECT s1, 0, 22
    ld t1, 0(a2)
    EXPECT t1, 0x4445, 23
    li t0, SSTATUS_SUM
    csrc sstatus, t0
    FAULTS 0x4000, 13, 24
    # 26-31: an execute-only page: a fault without MXR, a read with it, a fault after
    FAULTS 0x5000, 13, 26
    li t0, SSTATUS_MXR
    csrs sstatus, t0
    READS 0x5000, 0x5555, 28
    li t0, SSTATUS_MXR
    csrc sstatus, t0
    FAULTS 0x5000, 13, 30
    # 32-37: V clear, PBMT without PBMTE, W without R: page faults
    FAULTS 0x6000, 13, 32
    FAULTS 0x7000, 13, 34
    FAULTS 0x8000, 13, 36
    # 38-41: PMP: the page, then a page table, denied to S: access faults
    FAULTS 0x9000, 5, 38
    FAULTS 0x600000, 5, 40
    # 42-45: a read-only page reads, a store to it faults
    READS 0xa000, 0x6666, 42
    li s1, 0
    li t1, 1
    sd t1, 0(a2)
    EXPECT s1, 15, 44
    EXPECT s2, 0xa000, 45
    # 46-51: 0x1000 remapped: sfence.vma with the address, with the address and ASID
    # 0, and without either each make the next read see the new page
    READS 0x1000, 0x1111, 46
    la a1, page_b
    SETPTE l0, 1, a1, RWAD
    li a2, 0x1000
    sfence.vma a2, zero
    READS 0x1000, 0x7777, 48
    la a1, page_a
    SETPTE l0, 1, a1, RWAD
    li a2, 0x1000
    li a3, 0
    sfence.vma a2, a3
    READS 0x1000, 0x1111, 50
    la a1, page_b
    SETPTE l0, 1, a1, RWAD
    sfence.vma
    READS 0x1000, 0x7777, 52
    # 54-55: the 2 MiB leaf moved to BIG_B, fenced through another 4 KiB piece of it
    li a1, BIG_B
    SETPTE l1, 1, a1, RWAD
    li a2, 0x205000
    sfence.vma a2, zero
    READS 0x201000, 0xBBB1, 54
    # 56-57: a store through the 2 MiB leaf lands in BIG_B
    li a2, 0x203000
    li t1, 0xB0B0
    sd t1, 0(a2)
    EXPECT s1, 0, 56
    li a2, BIG_B + 0x3000
    ld t1, 0(a2)
    EXPECT t1, 0xB0B0, 57
    PASS

RECORD_AND_SKIP_MTRAP

FINISH_ROUTINE

.data
data_word: .dword 0x1234
.balign 4096
page_a:    .dword 0x1111
.balign 4096
page_b:    .dword 0x7777
.balign 4096
page_ad:   .dword 0x2222
.balign 4096
page_d:    .dword 0x3333
.balign 4096
page_user: .dword 0x4444
.balign 4096
page_xo:   .dword 0x5555
.balign 4096
page_ro:   .dword 0x6666
.balign 8192
pmp_page:  .dword 0x9999
.balign 4096
pmp_table: .zero 4096
l0: .zero 4096
l1: .zero 4096
l2: .zero 4096
l3: .zero 4096
