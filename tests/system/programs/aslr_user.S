# One user-mode code page run at two virtual addresses, as a system's shared libraries
# are under ASLR (tests/system/test_tb_cache_aslr.py).
#
# M-mode plays the kernel: it maps the physical page `ucode` user-executable at VA_A
# and at VA_B (Sv39; both under the first 2 MiB), enters U-mode at VA_A, VA_B, VA_A,
# VA_B, and checks what the code computed from its own pc each time: auipc, jal's
# link, the pc of an ebreak (mepc and mtval), of a load that faults (mepc: stored by
# the load's slow path) and of the closing ecall.  Whatever address the code's
# translation was made at, each value must name the address it runs at.  The two
# addresses come from a table on a page of its own (--defsym VA_A=..., VA_B=...), so
# builds with other addresses have the same code pages: only where the user page is
# mapped differs, as between two boots under ASLR.
.include "common.inc"
.option norvc                   # the offsets below are exact
.equ SV39, 8
.equ VA_DATA, 0x100000          # the user's data page
.equ VA_HOLE, 0x180000          # never mapped: the load there faults
.equ MAGIC, 0x1234abcd5678
.equ LOOPS, 300
.ifndef VA_A
.equ VA_A, 0x10000
.endif
.ifndef VA_B
.equ VA_B, 0x1a5000
.endif
# offsets in the user page
.equ OFF_LINK, 8                # jal's link
.equ OFF_EBREAK, 0x40
.equ OFF_FAULT, 0x48
.equ OFF_BACK, 0x50             # the link of the jal to the page's far end
.equ OFF_ECALL, 0x200

# l0[VA >> 12 & 511] = the PTE of physical \target with \flags (VA in \va)
.macro MAP va, target, flags
    la t0, l0
    srli t1, \va, 12
    andi t1, t1, 511
    slli t1, t1, 3
    add t0, t0, t1
    srli t1, \target, 12
    slli t1, t1, 10
    ori t1, t1, \flags
    sd t1, 0(t0)
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    la t0, root                 # root[0] -> l1, l1[0] -> l0
    la t1, l1
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, PTE_V
    sd t1, 0(t0)
    la t0, l1
    la t1, l0
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, PTE_V
    sd t1, 0(t0)
    la s1, vas
    ld s2, 0(s1)
    ld s3, 8(s1)
    la a1, ucode
    MAP s2, a1, PTE_V|PTE_R|PTE_X|PTE_U|PTE_A
    MAP s3, a1, PTE_V|PTE_R|PTE_X|PTE_U|PTE_A
    li s2, VA_DATA
    la a1, udata
    MAP s2, a1, PTE_V|PTE_R|PTE_W|PTE_U|PTE_A|PTE_D
    la t0, root
    srli t0, t0, 12
    li t1, SV39 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    PMP_OPEN
    li s4, 0                    # the run: 0..3, at vas[run & 1]
run:
    andi t0, s4, 1
    slli t0, t0, 3
    add t0, t0, s1
    ld s0, 0(t0)                # s0: where the user code runs this time
    li t0, 3 << 11              # MPP = U
    csrc mstatus, t0
    csrw mepc, s0
    mret

# M-mode traps from the user code: checks against s0, then on (ebreak, fault) or the
# next run (ecall)
mtrap:
    csrr t0, mcause
    csrr t1, mepc
    li t2, 3
    beq t0, t2, on_ebreak
    li t2, 13
    beq t0, t2, on_fault
    li t2, 8
    beq t0, t2, on_ecall
    li a0, (99 << 16) | 0x3333
    j finish
on_ebreak:
    addi t2, s0, OFF_EBREAK
    EXPECT_EQ t1, t2, 1
    csrr t3, mtval
    EXPECT_EQ t3, t2, 2
    j skip_insn
on_fault:
    addi t2, s0, OFF_FAULT
    EXPECT_EQ t1, t2, 3
    csrr t3, mtval
    EXPECT t3, VA_HOLE, 4
skip_insn:
    addi t1, t1, 4
    csrw mepc, t1
    mret
on_ecall:
    li t2, OFF_ECALL
    add t2, t2, s0
    EXPECT_EQ t1, t2, 5
    EXPECT_EQ a1, s0, 6         # auipc
    addi t2, s0, OFF_LINK
    EXPECT_EQ a2, t2, 7         # jal's link
    li t2, OFF_BACK
    add t2, t2, s0
    EXPECT_EQ t3, t2, 8         # the far jal's link
    EXPECT a3, LOOPS * 3, 9     # the loop (a branch back within the page)
    EXPECT a4, MAGIC, 10        # the data page's word
    addi s4, s4, 1
    li t0, 4
    bne s4, t0, run
    PASS

FINISH_ROUTINE

    .balign 4096
vas: .dword VA_A, VA_B          # a page of its own: the code pages do not change

    .balign 4096
ucode:                          # position-independent user code
    auipc a1, 0
    jal a2, 1f
1:  li a3, 0
    li t0, LOOPS
2:  addi a3, a3, 3
    addi t0, t0, -1
    bnez t0, 2b
    li t1, VA_DATA
    ld a4, 0(t1)                # the data page's first access: the slow path
    j 3f
    .org ucode + OFF_EBREAK
3:  ebreak
    lui t1, VA_HOLE >> 12
    ld t2, 0(t1)                # at OFF_FAULT
    jal t3, far                 # its link: OFF_BACK
    .org ucode + OFF_ECALL
back_ecall:
    ecall
1:  j 1b
    .org ucode + 0x400
far:
    j back_ecall

    .balign 4096
udata: .dword MAGIC
    .balign 4096
root: .skip 4096
l1:   .skip 4096
l0:   .skip 4096
