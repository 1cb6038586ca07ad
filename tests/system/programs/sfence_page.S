# sfence.vma with an address, as the native backend's page flush probe sees it
# (accel/tcg/page_filter.py): a flush of a page that no TLB holds is done in machine
# code, every other one by Python.  Each check is a stale entry the probe would leave
# if it wrongly answered "nothing cached": a page the native walker filled (load and
# store), a 2 MiB leaf fenced through another piece of it, a code page the native
# fetch walk filled (also where the block was found without Python: the code table),
# a page another address space holds, a page in its TLB set's victim entry, a page
# Python filled (A clear), pages filled after the
# filter was rebuilt (many flushes of a page no longer held make it stale), a flush
# with an ASID, and mstatus.TVM (S-mode's sfence.vma traps even for a page no TLB
# holds).  Faults go to M, which records mcause (s1) and skips the instruction; an
# ecall from S sets mstatus.TVM.
.include "common.inc"
.equ RWAD, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
.equ BIG_A, 0x80600000          # two 2 MiB-aligned physical regions
.equ BIG_B, 0x80800000
.equ SATP_A, (8 << 60)          # Sv39, ASID 0 (the root is or-ed in)
.equ SATP_B, (8 << 60) | (1 << 44)  # Sv39, ASID 1
.equ MSTATUS_TVM, 1 << 20



.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li a1, BIG_A + 0x1000
    li t1, 0xAAA1
    sd t1, 0(a1)
    li a1, BIG_B + 0x1000
    li t1, 0xBBB1
    sd t1, 0(a1)
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
    SETPTE l0, 1, a1, RWAD                              # 0x1000: remapped below
    la a1, page_c
    SETPTE l0, 3, a1, RWAD                              # 0x3000
    la a1, page_e
    SETPTE l0, 4, a1, RWAD                              # 0x4000
    la a1, code_a
    SETPTE l0, 5, a1, PTE_V|PTE_R|PTE_X|PTE_A           # 0x5000: code
    la a1, code_c
    SETPTE l0, 6, a1, PTE_V|PTE_R|PTE_X|PTE_A           # 0x6000: code
    la a1, page_c
    SETPTE l0, 8, a1, PTE_V|PTE_R|PTE_W                 # 0x8000: A and D clear
    li a1, BIG_A
    SETPTE l1, 1, a1, RWAD                              # 0x200000: 2 MiB
    la a1, l0b
    SETPTE l1, 2, a1, PTE_V
    la a1, page_e
    SETPTE l0b, 1, a1, RWAD                             # 0x401000: 0x1000's TLB set
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
    # 1-5: a page filled by a load and a store, remapped and fenced by address: the
    # next load and store use the new page
    READS 0x1000, 0x1111, 1
    li t1, 0x1234
    sd t1, 8(a2)
    la a1, page_b
    SETPTE l0, 1, a1, RWAD
    li a2, 0x1000
    sfence.vma a2
    READS 0x1000, 0x7777, 3
    li t1, 0x5678
    sd t1, 8(a2)
    la a3, page_b
    ld t1, 8(a3)
    EXPECT t1, 0x5678, 5
    # 6-9: a 2 MiB leaf, read through one piece, moved and fenced through another
    READS 0x201000, 0xAAA1, 6
    li a1, BIG_B
    SETPTE l1, 1, a1, RWAD
    li a2, 0x3FF000
    sfence.vma a2
    READS 0x201000, 0xBBB1, 8
    # 10-11: a code page run (fetch-walked, jump-cached), remapped and fenced
    li s3, 3
1:  li t3, 0x5000
    jalr ra, 0(t3)
    addi s3, s3, -1
    bnez s3, 1b
    EXPECT a0, 0xC0DEA, 10
    la a1, code_b
    SETPTE l0, 5, a1, PTE_V|PTE_R|PTE_X|PTE_A
    li a2, 0x5000
    sfence.vma a2
    li t3, 0x5000
    jalr ra, 0(t3)
    EXPECT a0, 0xC0DEB, 11
    # 12-17: address space A holds 0x1000; in B (ASID 1, which never touched it)
    # the page is remapped and fenced for every ASID; back in A the new page shows
    READS 0x1000, 0x7777, 12
    SATP_VALUE t0, l2b, SATP_B
    csrw satp, t0
    READS 0x201000, 0xBBB1, 14
    la a1, page_a
    SETPTE l0, 1, a1, RWAD
    li a2, 0x1000
    sfence.vma a2
    SATP_VALUE t0, l2, SATP_A
    csrw satp, t0
    READS 0x1000, 0x1111, 16
    # 18-25: 0x3000 filled; 0x1000 fenced 200 times while no TLB holds it (the
    # filter's byte for it goes stale: rebuilt); then 0x3000 and a page filled after
    # the rebuild are remapped and fenced
    READS 0x3000, 0x3333, 18
    li s3, 200
    li a2, 0x1000
1:  sfence.vma a2
    addi s3, s3, -1
    bnez s3, 1b
    READS 0x4000, 0x4444, 20
    la a1, page_d
    SETPTE l0, 3, a1, RWAD
    la a1, page_c
    SETPTE l0, 4, a1, RWAD
    li a2, 0x3000
    sfence.vma a2
    li a2, 0x4000
    sfence.vma a2
    READS 0x3000, 0xDDDD, 22
    READS 0x4000, 0x3333, 24
    # 26-27: fenced with the address and the ASID in use (0 in a register)
    la a1, page_e
    SETPTE l0, 3, a1, RWAD
    li a2, 0x3000
    li a3, 0
    sfence.vma a2, a3
    READS 0x3000, 0x4444, 26
    # 28-29: code at 0x6000 is translated in A, then A drops the page and the filter
    # forgets it (a rebuild); B runs the same code, found by a native fetch walk and
    # the code table alone; B remaps and fences the page: its next jump runs the new
    # code
    li t3, 0x6000
    jalr ra, 0(t3)
    EXPECT a0, 0xC0DEC, 28
    la a1, code_d
    SETPTE l0, 6, a1, PTE_V|PTE_R|PTE_X|PTE_A
    li s3, 200
    li a2, 0x6000
1:  sfence.vma a2
    addi s3, s3, -1
    bnez s3, 1b
    la a1, code_c
    SETPTE l0, 6, a1, PTE_V|PTE_R|PTE_X|PTE_A
    li a2, 0x6000
    sfence.vma a2
    SATP_VALUE t0, l2b, SATP_B
    csrw satp, t0
    li t3, 0x6000
    jalr ra, 0(t3)
    EXPECT a0, 0xC0DEC, 29
    la a1, code_d
    SETPTE l0, 6, a1, PTE_V|PTE_R|PTE_X|PTE_A
    li a2, 0x6000
    sfence.vma a2
    li t3, 0x6000
    jalr ra, 0(t3)
    EXPECT a0, 0xC0DED, 30
    # 31-36: back in A, 0x1000 goes to its set's victim entry (0x401000 takes the
    # main one), is remapped and fenced: the victim entry goes too
    SATP_VALUE t0, l2, SATP_A
    csrw satp, t0
    READS 0x1000, 0x1111, 31
    READS 0x401000, 0x4444, 33
    la a1, page_b
    SETPTE l0, 1, a1, RWAD
    li a2, 0x1000
    sfence.vma a2
    READS 0x1000, 0x7777, 35
    # 37-40: a page Python fills (A clear: the walker declines, Python sets A),
    # remapped and fenced
    READS 0x8000, 0x3333, 37
    la a1, page_d
    SETPTE l0, 8, a1, RWAD
    li a2, 0x8000
    sfence.vma a2
    READS 0x8000, 0xDDDD, 39
    # 41: mstatus.TVM: sfence.vma of a page no TLB holds is an illegal instruction
    ecall                       # M sets TVM
    li s1, 0
    li a2, 0x7000
    sfence.vma a2
    EXPECT s1, 2, 41
    PASS

.balign 4
mtrap:
    csrr s1, mcause
    li t0, 9                    # ecall from S: TVM on
    bne s1, t0, 1f
    li t0, MSTATUS_TVM
    csrs mstatus, t0
1:  MRET_PAST_INSN

FINISH_ROUTINE

.data
.balign 4096
page_a:    .dword 0x1111
.balign 4096
page_b:    .dword 0x7777
.balign 4096
page_c:    .dword 0x3333
.balign 4096
page_d:    .dword 0xDDDD
.balign 4096
page_e:    .dword 0x4444
.balign 4096
code_a:
    li a0, 0xC0DEA
    ret
.balign 4096
code_b:
    li a0, 0xC0DEB
    ret
.balign 4096
code_c:
    li a0, 0xC0DEC
    ret
.balign 4096
code_d:
    li a0, 0xC0DED
    ret
.balign 4096
l0: .zero 4096
l0b: .zero 4096
l1: .zero 4096
l2: .zero 4096
l2b: .zero 4096
