# mstatus.VS tracking (privileged spec 1.12, 3.1.6.6) with V (-cpu rv64,v=true):
#   misa.V is set; with VS Off every vector instruction and vector CSR access is
#   illegal (tval = the instruction); with VS Initial/Clean reading a vector CSR keeps
#   VS, any vector instruction makes it Dirty and sets SD (in mstatus and sstatus).
# The same ELF runs on qemu-system-riscv64 as the oracle.
.include "common.inc"
.option norelax
.option arch, +v
.equ VS_SHIFT, 9
.equ VS_MASK, (3 << VS_SHIFT)

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
    PASS

.balign 4
mtrap:
    csrr s1, mcause
    csrr s2, mtval
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    mret

FINISH_ROUTINE

.data
.balign 16
scratch: .zero 64
