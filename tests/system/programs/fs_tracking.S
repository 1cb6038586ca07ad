# mstatus.FS tracking (privileged spec 1.12, 3.1.6.6), in M-mode and in S-mode:
#   Off           every F/D instruction and fflags/frm/fcsr access is illegal
#                 (cause 2, tval = the instruction bits, 16-bit ones for RVC)
#   Initial/Clean reads and stores keep FS; the first write of an f register or
#                 of fflags/frm/fcsr (also by accrued flags) makes it Dirty, SD = 1
# The same ELF runs on qemu-system-riscv64 as the oracle.  With --defsym
# ACCRUED_ONLY=1 it also checks that flags accrued by an instruction that writes
# only an x register (flt with a NaN, an inexact fcvt.w.s) dirty FS, as the spec
# says; QEMU does not track that case, so the oracle run leaves it out.
.include "common.inc"
.option norelax                 # keep `la` pc-relative: gp is not set up
.equ FS_SHIFT, 13
.equ FS_MASK, (3 << FS_SHIFT)
.equ FS_INITIAL, (1 << FS_SHIFT)
.equ FS_CLEAN, (2 << FS_SHIFT)
.equ ONE_S, 0x3f800000          # 1.0f
.equ THREE_S, 0x40400000        # 3.0f
.equ THIRD_S, 0x3eaaaaab        # 1.0f / 3.0f, rounded to nearest (inexact)
.equ ONE_D, 0x3ff0000000000000  # 1.0
.equ THREE_D, 0x4008000000000000  # 3.0
.equ THIRD_D, 0x3fd5555555555555  # 1.0 / 3.0
.equ QNAN_S, 0x7fc00000
.equ ONE_HALF_S, 0x3fc00000     # 1.5f
.equ FFLAGS_NX, 1
.equ FFLAGS_NV, 16

# FS of \csr (mstatus or sstatus) is \fs and SD is \sd
.macro EXPECT_FS csr, fs, sd, n
    csrr t0, \csr
    srli t1, t0, FS_SHIFT
    andi t1, t1, 3
    EXPECT t1, \fs, \n
    srli t1, t0, 63
    EXPECT t1, \sd, \n
.endm

# Set FS of \csr to \value (one of the FS_* constants or 0)
.macro SET_FS csr, value
    li t0, FS_MASK
    csrc \csr, t0
.if \value
    li t0, \value
    csrs \csr, t0
.endif
.endm

# The instruction traps as illegal (s1 = cause, s2 = tval from the trap handler) with
# its own bits, 16 or 32 of them, as the trap value.
.macro CHECK_ILLEGAL n, insn:vararg
    li s1, 0
    li s2, 0
7:  \insn
    EXPECT s1, 2, \n
    la t0, 7b
    lhu t1, 0(t0)
    andi t2, t1, 3
    li t3, 3
    bne t2, t3, 8f
    lhu t2, 2(t0)
    slli t2, t2, 16
    or t1, t1, t2
8:
    EXPECT_EQ s2, t1, \n
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    la sp, stack_top
    la a2, scratch
    # PMP: give S-mode all memory (NAPOT over everything)
    PMP_OPEN

    # ---- (a) M-mode, FS Off -------------------------------------------------------
    SET_FS mstatus, 0
    EXPECT_FS mstatus, 0, 0, 1
    CHECK_ILLEGAL 2, fadd.s ft0, ft1, ft2
    CHECK_ILLEGAL 3, csrr a0, fcsr
    CHECK_ILLEGAL 4, csrwi fflags, 1
    CHECK_ILLEGAL 5, csrw frm, zero
    CHECK_ILLEGAL 6, fmv.x.w a0, ft0
    CHECK_ILLEGAL 7, fmv.w.x ft0, zero
    CHECK_ILLEGAL 8, flw ft0, 0(a2)
    CHECK_ILLEGAL 9, fsd ft0, 0(a2)
    CHECK_ILLEGAL 10, c.fld fs0, 8(a2)
    CHECK_ILLEGAL 11, c.fsd fs0, 8(a2)
    CHECK_ILLEGAL 12, c.fldsp ft0, 0(sp)
    CHECK_ILLEGAL 13, c.fsdsp ft0, 0(sp)
    CHECK_ILLEGAL 14, fmadd.d ft0, ft1, ft2, ft3
    CHECK_ILLEGAL 15, feq.d a0, ft0, ft1
    CHECK_ILLEGAL 16, fcvt.w.s a0, ft0
    CHECK_ILLEGAL 17, fclass.d a0, ft0
    CHECK_ILLEGAL 18, fsgnj.s ft0, ft1, ft2
    li s1, 0                            # a subroutine whose block traps under FS Off
    li s2, 0
    call fp_add_d
    EXPECT s1, 2, 19
    la t0, fp_add_d
    lwu t1, 0(t0)
    EXPECT_EQ s2, t1, 19
    EXPECT_FS mstatus, 0, 0, 20

    # ---- (b) M-mode, FS Initial ---------------------------------------------------
    SET_FS mstatus, FS_INITIAL
    EXPECT_FS mstatus, 1, 0, 21
    csrr a0, fcsr                       # reading FP state keeps FS
    EXPECT a0, 0, 22                    # the writes under FS Off did not happen
    EXPECT_FS mstatus, 1, 0, 23
    li a0, ONE_S
    fmv.w.x ft0, a0
    EXPECT_FS mstatus, 3, 1, 24
    fmv.x.w a1, ft0
    EXPECT a1, ONE_S, 25
    li a0, THREE_S
    fmv.w.x ft1, a0
    li a0, ONE_D
    fmv.d.x fa1, a0
    li a0, THREE_D
    fmv.d.x fa2, a0
    li a0, QNAN_S
    fmv.w.x ft3, a0
    li a0, ONE_HALF_S
    fmv.w.x ft4, a0
    csrw fflags, zero
    # the subroutine that trapped under FS Off now runs (blocks keyed by FS)
    SET_FS mstatus, FS_INITIAL
    call fp_add_d
    EXPECT_FS mstatus, 3, 1, 26
    fmv.x.d a1, fa0
    li a0, 0x4010000000000000           # 1.0 + 3.0
    EXPECT_EQ a1, a0, 27

    # ---- (c) M-mode, FS Clean -------------------------------------------------------
    SET_FS mstatus, FS_CLEAN
    EXPECT_FS mstatus, 2, 0, 30
    feq.s a1, ft0, ft0                  # no flags: writes only x registers
    EXPECT a1, 1, 31
    flt.s a1, ft0, ft1
    EXPECT a1, 1, 32
    fmv.x.w a1, ft1
    EXPECT a1, THREE_S, 33
    fclass.s a1, ft0
    EXPECT a1, 0x40, 34                 # positive normal
    fsw ft1, 0(a2)
    fsd fa1, 8(a2)
    csrr a1, fflags
    EXPECT a1, 0, 35
    fcvt.w.s a1, ft1                    # exact: no flags
    EXPECT a1, 3, 36
    EXPECT_FS mstatus, 2, 0, 37
    lw a1, 0(a2)
    EXPECT a1, THREE_S, 38
    fdiv.s ft2, ft0, ft1                # inexact: writes ft2 and fflags.NX
    EXPECT_FS mstatus, 3, 1, 39
    fmv.x.w a1, ft2
    EXPECT a1, THIRD_S, 40
    csrr a1, fflags
    EXPECT a1, FFLAGS_NX, 41
    # each kind of FP-state write dirties a clean FS on its own
    SET_FS mstatus, FS_CLEAN
    csrwi fflags, 0
    EXPECT_FS mstatus, 3, 1, 42
    SET_FS mstatus, FS_CLEAN
    csrrs zero, frm, zero               # a read (no write): stays Clean
    EXPECT_FS mstatus, 2, 0, 43
    csrw frm, zero
    EXPECT_FS mstatus, 3, 1, 44
    SET_FS mstatus, FS_CLEAN
    flw ft5, 0(a2)
    EXPECT_FS mstatus, 3, 1, 45
    SET_FS mstatus, FS_CLEAN
    c.fldsp ft6, 8(sp)
    EXPECT_FS mstatus, 3, 1, 46
    SET_FS mstatus, FS_CLEAN
    fsgnjn.s ft7, ft1, ft1
    EXPECT_FS mstatus, 3, 1, 47
    SET_FS mstatus, FS_INITIAL
    fcvt.s.w ft7, zero
    EXPECT_FS mstatus, 3, 1, 48
    # a faulting FP load writes nothing: FS stays Clean
    SET_FS mstatus, FS_CLEAN
    li a0, 0x80000                      # no memory there on either board: access fault
    li s1, 0
    flw ft5, 0(a0)
    EXPECT s1, 5, 49
    EXPECT_FS mstatus, 2, 0, 50
.ifdef ACCRUED_ONLY
    # flags accrued by an instruction that writes only x registers
    SET_FS mstatus, FS_CLEAN
    flt.s a1, ft3, ft0                  # a NaN operand: NV
    EXPECT a1, 0, 51
    EXPECT_FS mstatus, 3, 1, 52
    csrr a1, fflags
    EXPECT a1, FFLAGS_NV, 53
    SET_FS mstatus, FS_CLEAN
    fcvt.w.s a1, ft4, rtz               # 1.5 -> 1: NX
    EXPECT a1, 1, 54
    EXPECT_FS mstatus, 3, 1, 55
.endif

    # ---- (d) S-mode through sstatus, illegal instructions delegated to S -----------------
    SET_FS mstatus, 0
    li t0, (1 << 2)
    csrw medeleg, t0
    ENTER_S s_code, strap
s_code:
    EXPECT_FS sstatus, 0, 0, 60
    CHECK_ILLEGAL 61, fadd.d fa0, fa1, fa2
    CHECK_ILLEGAL 62, csrr a0, frm
    CHECK_ILLEGAL 63, c.fsdsp fs0, 16(sp)
    CHECK_ILLEGAL 64, fmv.d.x fa0, zero
    EXPECT_FS sstatus, 0, 0, 65
    SET_FS sstatus, FS_INITIAL
    EXPECT_FS sstatus, 1, 0, 66
    fmv.d.x fa3, zero
    EXPECT_FS sstatus, 3, 1, 67
    SET_FS sstatus, FS_CLEAN
    EXPECT_FS sstatus, 2, 0, 68
    feq.d a1, fa1, fa1
    EXPECT a1, 1, 69
    fmv.x.d a1, fa2
    li a0, THREE_D
    EXPECT_EQ a1, a0, 70
    fsd fa2, 0(a2)
    EXPECT_FS sstatus, 2, 0, 71
    fdiv.d fa4, fa1, fa2                # inexact
    EXPECT_FS sstatus, 3, 1, 72
    fmv.x.d a1, fa4
    li a0, THIRD_D
    EXPECT_EQ a1, a0, 73
    SET_FS sstatus, FS_CLEAN
    csrwi fcsr, 0
    EXPECT_FS sstatus, 3, 1, 74
    SET_FS sstatus, 0
    CHECK_ILLEGAL 75, fsw ft0, 0(a2)
    PASS

# Saves cause and trap value in s1/s2 and resumes after the faulting instruction.
.balign 4
mtrap:
    csrr s1, mcause
    csrr s2, mtval
    csrr t0, mepc
    lhu t1, 0(t0)
    andi t1, t1, 3
    li t2, 3
    addi t0, t0, 2
    bne t1, t2, 1f
    addi t0, t0, 2
1:  csrw mepc, t0
    mret

.balign 4
strap:
    csrr s1, scause
    csrr s2, stval
    csrr t0, sepc
    lhu t1, 0(t0)
    andi t1, t1, 3
    li t2, 3
    addi t0, t0, 2
    bne t1, t2, 1f
    addi t0, t0, 2
1:  csrw sepc, t0
    sret

# fa0 = fa1 + fa2, in a block of its own (called with FS Off and with FS Initial)
.balign 4
fp_add_d:
    fadd.d fa0, fa1, fa2
    ret

FINISH_ROUTINE

.data
.balign 16
scratch:
    .zero 64
stack:
    .zero 256
stack_top:
