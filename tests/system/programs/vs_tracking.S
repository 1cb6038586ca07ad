# mstatus.VS tracking (privileged spec 1.12, 3.1.6.6) with V (-cpu rv64,v=true):
#   misa.V is set; with VS Off every vector instruction and vector CSR access is
#   illegal (tval = the instruction); with VS Initial/Clean reading a vector CSR keeps
#   VS, any vector instruction makes it Dirty and sets SD (in mstatus and sstatus).
# With VS Dirty, a vector copy across pages and e32 arithmetic with partial steps (the
# paths translated code runs inline) are checked against scalar code.
# The same ELF runs on qemu-system-riscv64 as the oracle.
.include "common.inc"
.option norelax
.option arch, +v
.equ VS_SHIFT, 9
.equ VS_MASK, (3 << VS_SHIFT)
.equ COPY_LEN, 3 * 4096 + 300

.macro EXPECT_VS csr, vs, sd, n
    csrr t0, \csr
    srli t1, t0, VS_SHIFT
    andi t1, t1, 3
    EXPECT t1, \vs, \n
    srli t1, t0, 63
    EXPECT t1, \sd, \n
.endm

.macro SET_VS value
    li t0, VS_MASK
    csrc mstatus, t0
    li t0, (\value << VS_SHIFT)
    csrs mstatus, t0
.endm

.macro CHECK_ILLEGAL n, insn:vararg
    li s1, 0
    li s2, 0
7:  \insn
    EXPECT s1, 2, \n
    la t0, 7b
    lwu t1, 0(t0)
    EXPECT_EQ s2, t1, \n
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    la a2, scratch
    li t0, (3 << 13)            # FS Dirty: only VS changes below
    csrs mstatus, t0

    csrr t0, misa
    srli t0, t0, 21             # 'V'
    andi t0, t0, 1
    EXPECT t0, 1, 1

    SET_VS 0
    EXPECT_VS mstatus, 0, 1, 2  # SD: FS is Dirty
    CHECK_ILLEGAL 3, vsetvli a0, zero, e8, m1, ta, ma
    CHECK_ILLEGAL 4, csrr a0, vl
    CHECK_ILLEGAL 5, csrr a0, vlenb
    CHECK_ILLEGAL 6, csrwi vxrm, 1
    CHECK_ILLEGAL 7, vle8.v v1, (a2)

    li t0, (3 << 13)            # FS Clean from now on: SD follows VS alone
    csrc mstatus, t0
    li t0, (2 << 13)
    csrs mstatus, t0
    SET_VS 1
    EXPECT_VS mstatus, 1, 0, 10
    csrr a0, vlenb              # reading keeps VS
    EXPECT a0, 16, 11
    EXPECT_VS mstatus, 1, 0, 12
    vsetivli a0, 4, e32, m1, ta, ma
    EXPECT a0, 4, 13
    EXPECT_VS mstatus, 3, 1, 14
    EXPECT_VS sstatus, 3, 1, 15

    SET_VS 2
    EXPECT_VS mstatus, 2, 0, 20
    csrr a0, vl
    EXPECT a0, 4, 21
    EXPECT_VS sstatus, 2, 0, 22
    vmv.v.i v1, 7
    EXPECT_VS mstatus, 3, 1, 23

    SET_VS 2
    vle32.v v2, (a2)            # a load writes vector state
    EXPECT_VS mstatus, 3, 1, 30
    SET_VS 2
    csrwi vxrm, 2               # so does a CSR write
    EXPECT_VS mstatus, 3, 1, 31

    # VS Dirty: vsetvli and the unit-stride moves run inline (through the softmmu
    # TLB) where a run lies in one mapped page.  Copy COPY_LEN bytes from src + 1 to
    # dst + 5 (runs crossing pages, first touches) with the kernel's usercopy loop,
    # then the result against the source byte by byte.
    la a3, src                  # src[i] = i * 7 + 3
    li t0, COPY_LEN + 64
    li t1, 3
1:  sb t1, 0(a3)
    addi t1, t1, 7
    addi a3, a3, 1
    addi t0, t0, -1
    bnez t0, 1b
    la a0, dst + 5
    la a1, src + 1
    li a2, COPY_LEN
2:  vsetvli t0, a2, e8, m8, ta, ma
    vle8.v v8, (a1)
    add a1, a1, t0
    sub a2, a2, t0
    vse8.v v8, (a0)
    add a0, a0, t0
    bnez a2, 2b
    EXPECT_VS mstatus, 3, 1, 40
    la a0, dst + 5
    la a1, src + 1
    li a2, COPY_LEN
3:  lbu t1, 0(a0)
    lbu t2, 0(a1)
    EXPECT_EQ t1, t2, 41
    addi a0, a0, 1
    addi a1, a1, 1
    addi a2, a2, -1
    bnez a2, 3b
    la a0, dst + 4              # the bytes either side stay untouched
    lbu t1, 0(a0)
    EXPECT t1, 0, 42
    la a0, dst + 5 + COPY_LEN
    lbu t1, 0(a0)
    EXPECT t1, 0, 43
    # e32 add in place over 4 pages, 13 elements a time at most (partial 16-byte steps)
    la a0, dst + 8
    li a2, 3 * 1024
4:  vsetvli t0, a2, e32, m4, ta, ma
    li t1, 13
    bleu t0, t1, 5f
    mv t0, t1
5:  vsetvli t0, t0, e32, m4, ta, ma
    vle32.v v4, (a0)
    vadd.vi v4, v4, -3
    vxor.vx v4, v4, a2
    vse32.v v4, (a0)
    slli t1, t0, 2
    add a0, a0, t1
    sub a2, a2, t0
    bnez a2, 4b
    la a0, dst + 8              # one word back by scalar code
    la a1, src + 1 + 3
    lwu t1, 0(a0)
    lbu t2, 0(a1)
    lbu t3, 1(a1)
    slli t3, t3, 8
    or t2, t2, t3
    lbu t3, 2(a1)
    slli t3, t3, 16
    or t2, t2, t3
    lbu t3, 3(a1)
    slli t3, t3, 24
    or t2, t2, t3
    addi t2, t2, -3
    li t3, 3 * 1024
    xor t2, t2, t3
    slli t2, t2, 32
    srli t2, t2, 32
    EXPECT_EQ t1, t2, 44
    PASS

RECORD_AND_SKIP_MTRAP

FINISH_ROUTINE

.data
.balign 16
scratch: .zero 64
.balign 4096
src: .zero COPY_LEN + 64
.balign 64
dst: .zero COPY_LEN + 64
