# The page filter's Python bytes are exact (accel/tcg/page_filter.py: a count of
# holders per bucket): a page that an address space held stops sending fences to
# Python as soon as nothing holds it - when the address space is dropped (its ASID
# fenced: a process gone) or when the page itself was fenced in the one that held it
# (a COW fault: unmap fence, then the new PTE's fence).  Each case is followed by
# FENCES fences of the page, which the native probe must do itself (the test counts
# them in the stats line), and by checks that the page's new mapping shows (a probe
# that skipped Python for a page some cache still held would leave a stale entry).
# Faults go to M, which records mcause (s1) and skips the instruction.
.include "common.inc"
.equ RWAD, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
.equ SATP_A, (8 << 60)          # Sv39, ASID 0 (the root is or-ed in)
.equ SATP_B, (8 << 60) | (1 << 44)  # Sv39, ASID 1
.ifndef FENCES
.equ FENCES, 100
.endif



# FENCES fences of the page at \va
.macro FENCE_MANY va
    li s3, FENCES
    li a2, \va
1:  sfence.vma a2
    addi s3, s3, -1
    bnez s3, 1b
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    # both roots: a 1 GiB identity leaf over 0x80000000 and l1 -> l0 below it
    li a1, 0x80000000
    SETPTE l2, 2, a1, RWAD|PTE_X
    SETPTE l2b, 2, a1, RWAD|PTE_X
    la a1, l1
    SETPTE l2, 0, a1, PTE_V
    SETPTE l2b, 0, a1, PTE_V
    la a1, l0
    SETPTE l1, 0, a1, PTE_V
    la a1, page_a
    SETPTE l0, 8, a1, PTE_V|PTE_R|PTE_W    # 0x8000: A and D clear (Python fills)
    la a1, page_c
    SETPTE l0, 9, a1, PTE_V|PTE_R|PTE_W    # 0x9000: the same
    li a1, UART
    SETPTE l1, 128, a1, RWAD
    li a1, FINISHER
    SETPTE l0, 256, a1, RWAD
    SATP_VALUE t0, l2, SATP_A
    csrw satp, t0
    sfence.vma
    PMP_OPEN
    ENTER_S s_code, mtrap

s_code:
    # 1-2: A (ASID 0) holds 0x8000 (a Python fill); in B (ASID 1) the page is
    # remapped and A's ASID fenced: A is gone, nothing holds 0x8000
    READS 0x8000, 0xAAAA, 1
    SATP_VALUE t0, l2b, SATP_B
    csrw satp, t0
    la a1, page_b
    SETPTE l0, 8, a1, PTE_V|PTE_R|PTE_W
    li a3, 0
    sfence.vma x0, a3
    FENCE_MANY 0x8000
    # 3-6: B reads the new page; back in A (a new context) too
    READS 0x8000, 0xBBBB, 3
    SATP_VALUE t0, l2, SATP_A
    csrw satp, t0
    READS 0x8000, 0xBBBB, 5
    # 7-10: A holds 0x9000; it is remapped and fenced (Python drops it), then fenced
    # again and again with nothing holding it; the new page shows
    READS 0x9000, 0xCCCC, 7
    la a1, page_d
    SETPTE l0, 9, a1, PTE_V|PTE_R|PTE_W
    li a2, 0x9000
    sfence.vma a2
    FENCE_MANY 0x9000
    READS 0x9000, 0xDDDD, 9
    PASS

.balign 4
mtrap:
    csrr s1, mcause
    MRET_PAST_INSN

FINISH_ROUTINE

.data
.balign 4096
page_a:    .dword 0xAAAA
.balign 4096
page_b:    .dword 0xBBBB
.balign 4096
page_c:    .dword 0xCCCC
.balign 4096
page_d:    .dword 0xDDDD
.balign 4096
l0: .zero 4096
l1: .zero 4096
l2: .zero 4096
l2b: .zero 4096
