# Blocks found again after their jump-cache entry was evicted, and the changes that
# must make such a block unreachable (tests/system/test_jc_second_level.py).
#
# The native dispatcher's jump cache is direct-mapped by pc: code 256 KiB apart
# shares an entry.  The loops below call pairs of functions 256 KiB apart (f/g at
# physical addresses, V/W at virtual ones), so every call evicts the other's entry;
# the dispatcher's second level (code TLB + code table) must find them again without
# leaving native code.  Then what it found must stop being found:
#   - VA 0x4000 (V) is remapped to another physical page with other code and fenced
#     with sfence.vma: calls to V must run the new page's code;
#   - f's first instruction is overwritten and fence.i executed: calls to f must run
#     the new instruction.
# S-mode (Sv39) runs the checks; it reports through ecall (a0: the finisher value).
# Hart 1 (-smp 2, one host thread per hart with thread=multi) calls its own
# conflicting pair in M-mode meanwhile, so two harts look blocks up at once while
# each adds to the shared code table.
.include "common.inc"
.option norvc                   # the patched instruction is one 32-bit word
.equ LEAF_RW, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
.equ LEAF_X, PTE_V|PTE_X|PTE_A
.equ SV39, 8
.equ VA_V, 0x4000
.equ VA_W, 0x44000              # 256 KiB above V: the same jump cache entry
.ifndef ROUNDS
.equ ROUNDS, 20000
.endif
.ifndef HARTS
.equ HARTS, 1
.endif
.equ AFTER, 1000                # rounds after each change
.equ LI_A0_6, 0x00600513        # addi a0, zero, 6

# s4 = sum of a0 over n rounds of calling fa then fb (addresses in registers)
.macro CALL_PAIR fa, fb, n
    li s4, 0
    li s5, \n
1:  jalr ra, 0(\fa)
    add s4, s4, a0
    jalr ra, 0(\fb)
    add s4, s4, a0
    addi s5, s5, -1
    bnez s5, 1b
.endm

.globl _start
_start:
    csrr t0, mhartid
    bnez t0, hart1
    la t0, mtrap
    csrw mtvec, t0
    li a1, 0x80000000
    SETPTE root, 2, a1, LEAF_RW|PTE_X
    la a1, l1
    SETPTE root, 0, a1, PTE_V
    la a1, l0
    SETPTE l1, 0, a1, PTE_V
    li a1, UART
    SETPTE l1, 128, a1, LEAF_RW
    li a1, FINISHER
    SETPTE l0, 256, a1, LEAF_RW
    la a1, code_v1
    SETPTE l0, 4, a1, LEAF_X
    la a1, code_w
    SETPTE l0, 68, a1, LEAF_X
    la t0, root
    srli t0, t0, 12
    li t1, SV39 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    PMP_OPEN
    ENTER_S s_code, mtrap

s_code:
    la s0, func_f
    la s1, func_g
    li s2, VA_V
    li s3, VA_W
    # 1-2: the conflicting pairs, many times (the second level at work)
    CALL_PAIR s0, s1, ROUNDS
    li t0, ROUNDS * (5 + 7)
    EXPECT_EQ s4, t0, 1
    CALL_PAIR s2, s3, ROUNDS
    li t0, ROUNDS * (1 + 3)
    EXPECT_EQ s4, t0, 2
    # 3: V remapped to other code; sfence.vma of that page makes it visible (V is
    # called last, so the jump cache holds its block)
    jalr ra, 0(s2)
    la a1, code_v2
    SETPTE l0, 4, a1, LEAF_X
    sfence.vma s2, zero
    CALL_PAIR s2, s3, AFTER
    li t0, AFTER * (2 + 3)
    EXPECT_EQ s4, t0, 3
    # 4: f patched; fence.i makes it visible
    li t0, LI_A0_6
    sw t0, 0(s0)
    fence.i
    CALL_PAIR s0, s1, AFTER
    li t0, AFTER * (6 + 7)
    EXPECT_EQ s4, t0, 4
    # 5: V mapped back: its first code again (its blocks were never dropped).  V is
    # called once first: fence.i emptied the jump caches, so the dispatcher enters
    # V's block on its own, with no Python bookkeeping of that pc
    jalr ra, 0(s2)
    la a1, code_v1
    SETPTE l0, 4, a1, LEAF_X
    sfence.vma s2, zero
    CALL_PAIR s2, s3, AFTER
    li t0, AFTER * (1 + 3)
    EXPECT_EQ s4, t0, 5
.if HARTS > 1
    # 6: hart 1 done with its pair, and its sums matched
    la t0, hart1_state
6:  lw t1, 0(t0)
    li t2, 2
    bne t1, t2, 6b
    lw t1, 4(t0)
    EXPECT t1, 0, 6
.endif
    li a0, 0x5555
    ecall

# M-mode traps: ecall from S reports a0; anything else is check 99
mtrap:
    csrr t0, mcause
    li t1, 9
    beq t0, t1, finish
    li a0, (99 << 16) | 0x3333
    j finish

FINISH_ROUTINE

# hart 1: M-mode, no paging; state 1 running, 2 done; word 4: 0 if its sums matched
hart1:
    la t0, hart1_state
    li t1, 1
    sw t1, 0(t0)
    la s0, func_f1
    la s1, func_g1
    li s6, 0
    li s7, 4
2:  CALL_PAIR s0, s1, ROUNDS / 4
    li t0, (ROUNDS / 4) * (11 + 13)
    beq s4, t0, 3f
    li s6, 1
3:  addi s7, s7, -1
    bnez s7, 2b
    la t0, hart1_state
    sw s6, 4(t0)
    fence
    li t1, 2
    sw t1, 0(t0)
4:  wfi
    j 4b

    .balign 8
hart1_state:
    .word 0, 0

    .balign 4096
root: .skip 4096
l1:   .skip 4096
l0:   .skip 4096
code_v1:
    li a0, 1
    ret
    .balign 4096
code_v2:
    li a0, 2
    ret
    .balign 4096
code_w:
    li a0, 3
    ret

    .org 0x10000
func_f:
    li a0, 5
    ret
    .org 0x10100
func_f1:
    li a0, 11
    ret
    .org 0x50000                # 256 KiB above func_f: the same jump cache entry
func_g:
    li a0, 7
    ret
    .org 0x50100
func_g1:
    li a0, 13
    ret
