# Instruction fetch's page-walk edge cases, as the native dispatcher's code TLB refill
# (backend/x86_64/page_walk.py, a fetch walk) meets them.  A block already translated
# in one address space is found again, in a fresh one (a new ASID: empty TLBs), by the
# dispatcher's code TLB refill when the walk allows the fetch; every case below runs
# a function first in space A (root l2a: the block exists) and then at the same
# virtual address in a fresh space B (root l2b) whose PTE is the edge:
#   an execute-only page (runs), a U page fetched from S and an S page fetched from U
#   (instruction page faults), A clear (runs; the walk sets A), R without X (fault),
#   a 2 MiB code leaf and then the leaf moved + sfence.vma of another 4 KiB piece of
#   it, a 4 KiB code page remapped + sfence.vma addr (the new code must run), and one
#   virtual page holding other code in each of two processes, alternated.
# A "function" is the dword `li a0, K; ecall`, written into its page at start.  Every
# trap goes to M, which records mcause (s1) and mtval (s2) and resumes S at s3.
.include "common.inc"
.equ XA, PTE_V|PTE_X|PTE_A
.equ BIG_A, 0x80600000          # two 2 MiB-aligned physical regions of code
.equ BIG_B, 0x80800000
.equ SSTATUS_SPP, 1 << 8
.equ SV39, 8 << 60

# the function `li a0, \k; ecall` at physical \where
.macro FUNCTION where, k
    li t0, \where
    li t1, (0x00000073 << 32) | ((\k) << 20) | (10 << 7) | 0x13
    sd t1, 0(t0)
.endm
.macro FUNCTION_AT label, k
    la t0, \label
    li t1, (0x00000073 << 32) | ((\k) << 20) | (10 << 7) | 0x13
    sd t1, 0(t0)
.endm

# satp = Sv39, root \root, ASID \asid (never used before: a fresh address space)
.macro SPACE root, asid
    la t0, \root
    srli t0, t0, 12
    li t1, SV39 | ((\asid) << 44)
    or t0, t0, t1
    csrw satp, t0
.endm

# run the code at virtual \va in S (\user = 0) or U; back with a0 (its K), s1/s2
.macro RUN va, user
    li s1, 0
    li s2, 0
    li a0, 0
    la s3, 1f
    li a2, \va
.if \user
    li t0, SSTATUS_SPP
    csrc sstatus, t0
    csrw sepc, a2
    sret
.else
    jr a2
.endif
1:
.endm

# the run returned \k from S (its ecall) / U: checks n and n+1
.macro RETURNS va, user, k, n
    RUN \va, \user
    EXPECT s1, 9 - \user, \n
    EXPECT a0, \k, \n + 1
.endm

# the run's fetch faulted (instruction page fault at \va): checks n and n+1
.macro FAULTS va, user, n
    RUN \va, \user
    EXPECT s1, 12, \n
    EXPECT s2, \va, \n + 1
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    FUNCTION_AT code_1, 0x101
    FUNCTION_AT code_2, 0x102
    FUNCTION_AT code_3, 0x103
    FUNCTION_AT code_4, 0x104
    FUNCTION_AT code_5, 0x105
    FUNCTION_AT code_6, 0x106
    FUNCTION_AT code_7, 0x107
    FUNCTION_AT code_8, 0x108
    FUNCTION BIG_A + 0x1000, 0x1A1
    FUNCTION BIG_B + 0x1000, 0x1B1
    fence.i
    # both roots: l2[2] a 1 GiB identity leaf over 0x80000000 (this code, S only),
    # l2[0] -> l1 -> l0 (the functions' pages)
    li a1, 0x80000000
    SETPTE l2a, 2, a1, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
    SETPTE l2b, 2, a1, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
    la a1, l1a
    SETPTE l2a, 0, a1, PTE_V
    la a1, l0a
    SETPTE l1a, 0, a1, PTE_V
    la a1, l1b
    SETPTE l2b, 0, a1, PTE_V
    la a1, l0b
    SETPTE l1b, 0, a1, PTE_V
    li a1, UART                 # the UART and the finisher stay reachable from S
    SETPTE l1a, 128, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    SETPTE l1b, 128, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    li a1, FINISHER
    SETPTE l0a, 256, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    SETPTE l0b, 256, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    # space A: every function as it may run
    la a1, code_1
    SETPTE l0a, 0x10, a1, XA                            # 0x10000: execute-only
    la a1, code_2
    SETPTE l0a, 0x11, a1, XA                            # 0x11000: S code
    la a1, code_3
    SETPTE l0a, 0x12, a1, XA|PTE_U                      # 0x12000: U code
    la a1, code_4
    SETPTE l0a, 0x13, a1, XA|PTE_R                      # 0x13000
    la a1, code_5
    SETPTE l0a, 0x14, a1, XA|PTE_R                      # 0x14000: remapped
    la a1, code_6
    SETPTE l0a, 0x15, a1, XA                            # 0x15000: A's code
    la a1, code_4
    SETPTE l0a, 0x16, a1, XA|PTE_R                      # 0x16000
    li a1, BIG_A
    SETPTE l1a, 1, a1, XA                               # 0x200000: 2 MiB leaf
    # space B: the same virtual pages, the edges
    la a1, code_1
    SETPTE l0b, 0x10, a1, XA                            # execute-only
    la a1, code_2
    SETPTE l0b, 0x11, a1, XA|PTE_U                      # a U page, fetched from S
    la a1, code_3
    SETPTE l0b, 0x12, a1, XA                            # an S page, fetched from U
    la a1, code_4
    SETPTE l0b, 0x13, a1, PTE_V|PTE_R|PTE_X             # A clear
    la a1, code_5
    SETPTE l0b, 0x14, a1, XA|PTE_R                      # remapped below
    la a1, code_8
    SETPTE l0b, 0x15, a1, XA                            # B's code at A's address
    la a1, code_4
    SETPTE l0b, 0x16, a1, PTE_V|PTE_R|PTE_A             # readable, not executable
    li a1, BIG_A
    SETPTE l1b, 1, a1, XA                               # moved below
    # PMP: S may do everything
    PMP_OPEN
    ENTER_S s_code, mtrap

s_code:
    # 1-20: space A runs every function (translated here: the blocks exist)
    SPACE l2a, 1
    RETURNS 0x10000, 0, 0x101, 1
    RETURNS 0x11000, 0, 0x102, 3
    RETURNS 0x12000, 1, 0x103, 5
    RETURNS 0x13000, 0, 0x104, 7
    RETURNS 0x14000, 0, 0x105, 9
    RETURNS 0x15000, 0, 0x106, 11
    RETURNS 0x16000, 0, 0x104, 13
    RETURNS 0x201000, 0, 0x1A1, 15
    # the code that 0x14000 and the 2 MiB leaf show later, run here once too
    la a1, code_7
    SETPTE l0a, 0x14, a1, XA|PTE_R
    li a2, 0x14000
    sfence.vma a2, zero
    RETURNS 0x14000, 0, 0x107, 17
    li a1, BIG_B
    SETPTE l1a, 1, a1, XA
    li a2, 0x200000
    sfence.vma a2, zero
    RETURNS 0x201000, 0, 0x1B1, 19
    # 21-34: a fresh space B: the same blocks, other PTEs
    SPACE l2b, 2
    RETURNS 0x10000, 0, 0x101, 21               # execute-only: runs
    FAULTS 0x11000, 0, 23                       # a U page from S
    FAULTS 0x12000, 1, 25                       # an S page from U
    RETURNS 0x13000, 0, 0x104, 27               # A clear: runs, and A is set
    la t0, l0b
    ld t1, 0x13*8(t0)
    andi t1, t1, PTE_A
    EXPECT t1, PTE_A, 29
    FAULTS 0x16000, 0, 30                       # not executable
    RETURNS 0x14000, 0, 0x105, 32
    RETURNS 0x201000, 0, 0x1A1, 34              # the 2 MiB leaf
    # 36-39: 0x14000 remapped and fenced by address: the new code runs; the 2 MiB
    # leaf moved and fenced through another 4 KiB piece of it: its new code runs
    la a1, code_7
    SETPTE l0b, 0x14, a1, XA|PTE_R
    li a2, 0x14000
    sfence.vma a2, zero
    RETURNS 0x14000, 0, 0x107, 36
    li a1, BIG_B
    SETPTE l1b, 1, a1, XA
    li a2, 0x205000
    sfence.vma a2, zero
    RETURNS 0x201000, 0, 0x1B1, 38
    # 40-51: 0x15000 is other code in each process, switched to and fro (fresh
    # ASIDs: each space starts empty), and once more in the spaces known already
    RETURNS 0x15000, 0, 0x108, 40
    SPACE l2a, 3
    RETURNS 0x15000, 0, 0x106, 42
    SPACE l2b, 4
    RETURNS 0x15000, 0, 0x108, 44
    SPACE l2a, 3
    RETURNS 0x15000, 0, 0x106, 46
    SPACE l2b, 4
    RETURNS 0x15000, 0, 0x108, 48
    FAULTS 0x11000, 0, 50                       # still: a U page from S
    PASS

.balign 4
mtrap:                          # any trap: record it, resume S at s3
    csrr s1, mcause
    csrr s2, mtval
    MRET_TO_S s3

FINISH_ROUTINE

.data
.balign 4096
code_1: .zero 4096
code_2: .zero 4096
code_3: .zero 4096
code_4: .zero 4096
code_5: .zero 4096
code_6: .zero 4096
code_7: .zero 4096
code_8: .zero 4096
l0a: .zero 4096
l1a: .zero 4096
l2a: .zero 4096
l0b: .zero 4096
l1b: .zero 4096
l2b: .zero 4096
