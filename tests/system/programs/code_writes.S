# Code rewritten through each kind of guest write, then fence.i: the new code must run.
# fence.i compares only the pages marked as written since their last compare
# (memory/code_writes.py), so every path below must mark the page.  Each check first
# runs the routine and fences (its page is compared and its mark cleared), then
# rewrites the routine one way, fences and calls it.  Run with -smp 2.
#   1  a plain store (M-mode, bare): the first one, and one through a TLB entry
#   2  a store that hits the victim TLB entry (another page took the main entry)
#   3  an AMO (amoadd.w on the instruction's immediate), 4  LR/SC
#   5  a misaligned store crossing into the page (the softmmu's slow path)
#   6  a store by the other hart (its own TLB entry, second time around)
#   7  S-mode (Sv39): a store through a second mapping of the page (the native
#      walker's refill), again through its TLB entry, and after sfence.vma
#   8  cbo.zero (--defsym CBO=1, -cpu with Zicboz): zeroed code must trap
#   9  a vector unit-stride store (--defsym VEC=1, -cpu with V)
.include "common.inc"
.option norvc
.equ ADDI_A0, 0x00000513        # addi a0, x0, imm (imm in bits 31:20)
.equ RET, 0x00008067            # jalr x0, 0(ra)
.equ ALIAS, 0x40000000          # VA 0xC0000000 + x: PA 0x80000000 + x, not executable
.equ FAR, 0x400000              # 4 MiB: the same set of the direct-mapped TLB

# code[0] = addi a0, x0, \imm; code[4] = ret (stores through \base)
.macro WRITE base, imm
    li t1, ADDI_A0 | ((\imm) << 20)
    sw t1, 0(\base)
    li t1, RET
    sw t1, 4(\base)
.endm

# call the routine at code (VA s1) and fence first, so that its page starts clean
.macro SETTLE
    fence.i
    jalr ra, 0(s1)
    fence.i
.endm

.macro CALL_EXPECT imm, n
    fence.i
    jalr ra, 0(s1)
    EXPECT a0, \imm, \n
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    la s1, code
    la s2, mailbox
    csrr t0, mhartid
    beqz t0, main
    li t1, 1
    beq t0, t1, helper
park:
    wfi
    j park

main:
    # 1: a plain store, then another through the TLB entry it made
    WRITE s1, 1
    CALL_EXPECT 1, 1
    SETTLE
    WRITE s1, 2
    CALL_EXPECT 2, 1
    # 2: the page's entry pushed to the victim slot by a page 4 MiB away
    SETTLE
    li t0, FAR
    add s3, s1, t0
    sw zero, 0(s1)              # main entry: code
    sw zero, 8(s3)              # main entry: far, code in the victim entry
    WRITE s1, 3                 # (undo the zero)
    SETTLE
    sw zero, 8(s3)              # far in the main entry again
    li t1, ADDI_A0 | (4 << 20)
    sw t1, 0(s1)                # through the victim entry
    CALL_EXPECT 4, 2
    # 3: an AMO adds 1 to the immediate
    SETTLE
    li t1, 1 << 20
    amoadd.w zero, t1, (s1)
    CALL_EXPECT 5, 3
    # 4: LR/SC
    SETTLE
1:  lr.w t1, (s1)
    li t2, 1 << 20
    add t1, t1, t2
    sc.w t2, t1, (s1)
    bnez t2, 1b
    CALL_EXPECT 6, 4
    # 5: an 8-byte store at code - 4: four zero bytes before the page, the
    # instruction on it
    SETTLE
    li t1, ADDI_A0 | (7 << 20)
    slli t1, t1, 32
    sd t1, -4(s1)
    CALL_EXPECT 7, 5
    # 6: the other hart writes the routine (twice: the second store hits its TLB)
    li s4, 8
    li s5, 10
2:  SETTLE
    sd s4, 0(s2)                # ask hart 1 for imm s4
3:  ld t1, 8(s2)
    bne t1, s4, 3b              # until it says it wrote it
    fence.i
    jalr ra, 0(s1)
    EXPECT_EQ a0, s4, 6
    addi s4, s4, 1
    ble s4, s5, 2b
.ifdef VEC
    # 9: vse32.v of one element (the vector unit's own store path)
    li t0, 1 << 9               # mstatus.VS: initial
    csrs mstatus, t0
    SETTLE
    .option push
    .option arch, +v
    vsetivli zero, 1, e32, m1, ta, ma
    li t1, ADDI_A0 | (30 << 20)
    vmv.v.x v1, t1
    vse32.v v1, (s1)
    .option pop
    CALL_EXPECT 30, 9
.endif
    # 7: S-mode, Sv39: code at VA = PA, and again at VA + ALIAS (data only)
    li a1, 0
    SETPTE l2, 0, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D         # MMIO
    li a1, 0x80000000
    SETPTE l2, 2, a1, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D   # RAM
    SETPTE l2, 3, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D         # RAM again
    la a1, l2
    srli a1, a1, 12
    li t0, 8 << 60
    or t0, t0, a1
    csrw satp, t0
    sfence.vma
    PMP_OPEN
.ifdef CBO
    li t0, 1 << 7               # menvcfg.CBZE: S may run cbo.zero
    csrs 0x30a, t0
.endif
    ENTER_S supervisor, unexpected

supervisor:
    li t0, ALIAS
    add s6, s1, t0              # the routine through the second mapping
    SETTLE
    li t1, ADDI_A0 | (20 << 20)
    sw t1, 0(s6)                # the first store there: a page walk
    CALL_EXPECT 20, 7
    SETTLE
    li t1, ADDI_A0 | (21 << 20)
    sw t1, 0(s6)                # through the TLB entry
    CALL_EXPECT 21, 7
    SETTLE
    sfence.vma
    li t1, ADDI_A0 | (22 << 20)
    sw t1, 0(s6)                # a walk again
    CALL_EXPECT 22, 7
.ifdef CBO
    # 8: cbo.zero over the routine: an illegal instruction (mtrap: a0 = mcause 2)
    SETTLE
    li a0, 0
    .option push
    .option arch, +zicboz
    cbo.zero (s6)
    .option pop
    lw t1, 0(s6)
    EXPECT t1, 0, 8
    CALL_EXPECT 2, 8
.endif
    PASS

helper:                         # hart 1: write imm n when asked for it, say so
1:  ld t1, 0(s2)
    ld t2, 8(s2)
    beq t1, t2, 1b
    slli t3, t1, 20
    li t4, ADDI_A0
    or t3, t3, t4
    sw t3, 0(s1)
    fence w, w
    sd t1, 8(s2)
    j 1b

# M-mode traps: an illegal instruction at a call (check 8's zeroed routine) returns
# to ra with a0 = mcause; anything else fails the program
mtrap:
    csrr t0, mcause
    li t1, 2
    bne t0, t1, unexpected
    mv a0, t0
    csrw mepc, ra
    mret
unexpected:
    li a0, (99 << 16) | 0x3333
    j finish

FINISH_ROUTINE

.data
.align 3
mailbox:
    .dword 0, 0                 # asked, written
.align 12
l2:
    .space 4096
    .space 4096                 # (check 5 writes zeros to its last word)
code:                           # the first word of a page
    .word 0, 0
    .space 4088
