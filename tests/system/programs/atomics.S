# The A extension (LR/SC and every AMO, .w and .d), in M-mode and then from S-mode
# with Sv39 paging on:
#   AMOs        rd = the old value (sign-extended for .w), memory = op(old, rs2); a .w
#               leaves the other half of its dword alone; min/max compare signed,
#               minu/maxu unsigned, both as 32-bit numbers for .w
#   LR/SC       SC succeeds (rd = 0) only at the reserved address with memory unchanged
#               since LR, and every SC ends the reservation; LR.w sign-extends
#   misaligned  AMO and SC: cause 6 (store/AMO), LR: cause 4, tval = the address;
#               neither rd nor memory written
#   paging      an AMO (or SC) to a read-only or an unmapped page: cause 15 (store/AMO
#               page fault), memory unchanged; an LR from a read-only page works
# A failed check prints "FAIL got=... want=..." and exits with its number through
# the SiFive test finisher.  The same ELF runs on qemu-system-riscv64 as the oracle:
# QEMU checks the reservation address before the alignment, so a misaligned SC there
# simply fails (rd = 1) where the spec's model (and pemu) trap; assembled with
# --defsym LAX_MISALIGNED_SC=1, the program accepts either of the two outcomes.
# (Run QEMU 7.2 with MTTCG: its single-threaded TCG reports a misaligned AMO as a
# misaligned load, cause 4.)  Other harts, if any, park.
.include "common.inc"
.option norelax                 # keep `la` pc-relative: gp is not set up
.equ SATP_SV39, (8 << 60)
.equ VA_RO, 0x40000000          # the test pages, through l2[1] -> l1 -> l0
.equ VA_RW, 0x40001000
.equ VA_UNMAPPED, 0x40002000
.equ CAUSE_LOAD_MISALIGNED, 4
.equ CAUSE_STORE_MISALIGNED, 6
.equ CAUSE_LOAD_PAGE_FAULT, 13
.equ CAUSE_STORE_PAGE_FAULT, 15
.equ GUARD, 0x6b6b6b6b6b6b6b6b  # the dwords either side of the two under test
.equ FILL, 0x1122334455667788
.equ RD_UNTOUCHED, 0x4444

# Register conventions: a2 = the two test dwords (with a guard dword either side),
# a3 = rs2, a4 = rd, a5 = the address; s1/s2 = mcause/mtval of the last trap taken in
# M, s4/s5 = scause/stval of the last one taken in S.

# \got == \want (registers), else fail with check \n
.macro CHECK_EQ got, want, n
    beq \got, \want, 9f
    mv a1, \got
    mv t6, \want
    li a0, ((\n) << 16) | 0x3333
    j fail
9:
.endm

# \reg == \val (a constant), else fail with check \n
.macro CHECK reg, val, n
    li t6, \val
    CHECK_EQ \reg, t6, \n
.endm

# \op a4, a3, (a2 + \off) with the dword at a2 = \init and a3 = \src:
# rd = \old, the dword = \after, rs2 unchanged
.macro AMO n, op, off, init, src, old, after
    li t0, \init
    sd t0, 0(a2)
    li a3, \src
    addi a5, a2, \off
    \op a4, a3, (a5)
    CHECK a4, \old, \n
    ld t0, 0(a2)
    CHECK t0, \after, \n
    CHECK a3, \src, \n
.endm

# Fill both test dwords, set rd to RD_UNTOUCHED and a5 = a2 + \off, then run \insn
.macro PREPARE off, insn:vararg
    li t0, FILL
    sd t0, 0(a2)
    sd t0, 8(a2)
    li a3, -1
    li a4, RD_UNTOUCHED
    addi a5, a2, \off
    li s1, 0
    li s2, 0
    \insn
.endm

# Neither rd, nor the test dwords, nor the guards changed
.macro CHECK_NOTHING_WRITTEN n
    CHECK a4, RD_UNTOUCHED, \n
    ld t0, 0(a2)
    CHECK t0, FILL, \n
    ld t0, 8(a2)
    CHECK t0, FILL, \n
    ld t0, -8(a2)
    CHECK t0, GUARD, \n
    ld t0, 16(a2)
    CHECK t0, GUARD, \n
.endm

# \insn (rd a4, rs2 a3, address a5 = a2 + \off) traps in M with \cause, tval = a5,
# and writes nothing
.macro MISALIGNED n, off, cause, insn:vararg
    PREPARE \off, \insn
    CHECK s1, \cause, \n
    CHECK_EQ s2, a5, \n
    CHECK_NOTHING_WRITTEN \n
.endm

# A misaligned SC: as MISALIGNED with cause 6; with LAX_MISALIGNED_SC it may instead
# fail without a trap (rd = 1), still writing no memory
.macro MISALIGNED_SC n, off, insn:vararg
.ifdef LAX_MISALIGNED_SC
    PREPARE \off, \insn
    bnez s1, 8f
    CHECK a4, 1, \n
    li a4, RD_UNTOUCHED
    j 7f
8:  CHECK s1, CAUSE_STORE_MISALIGNED, \n
    CHECK_EQ s2, a5, \n
7:  CHECK_NOTHING_WRITTEN \n
.else
    MISALIGNED \n, \off, CAUSE_STORE_MISALIGNED, \insn
.endif
.endm

# lr.d of the aligned test dword, then sc.d \rd, \rs2, \addr
.macro RESERVED_SC_D rd, rs2, addr
    lr.d t0, (a2)
    sc.d \rd, \rs2, \addr
.endm

# From S-mode: \op a4, a3, (\base + 16) takes a store/AMO page fault in S with
# stval = the address; rd unchanged and, on the read-only page, memory too
.macro AMO_FAULT n, base, op
    addi a5, \base, 16
    li a3, 1
    li a4, RD_UNTOUCHED
    li s4, 0
    li s5, 0
    \op a4, a3, (a5)
    CHECK s4, CAUSE_STORE_PAGE_FAULT, \n
    CHECK_EQ s5, a5, \n
    CHECK a4, RD_UNTOUCHED, \n
    CHECK s1, 0, \n             # and it did not go to M
.ifc \base, s6
    ld t0, 16(s6)
    CHECK t0, 0xfedcba9876543210, \n
.endif
.endm

.globl _start
_start:
    csrr t0, mhartid            # one hart runs the checks, any others park
    beqz t0, 1f
2:  wfi
    j 2b
1:  la t0, mtrap
    csrw mtvec, t0
    la a2, test_dwords
    li t0, GUARD
    sd t0, -8(a2)
    sd t0, 16(a2)
    li s1, 0

    # ---- AMOs in M-mode: 1-61 one case a line, 62-68 register corner cases --------------
    # .w at offset 0: rd = the old word sign-extended, bits 63:32 keep 0x5a5a5a5a
    AMO 1, amoswap.w, 0, 0x5a5a5a5a80000000, 0x7fffffff, 0xffffffff80000000, 0x5a5a5a5a7fffffff
    AMO 2, amoswap.w, 0, 0x5a5a5a5a00000001, 0xffffffff00000002, 0x1, 0x5a5a5a5a00000002
    AMO 3, amoadd.w, 0, 0x5a5a5a5a7fffffff, 0x1, 0x7fffffff, 0x5a5a5a5a80000000
    AMO 4, amoadd.w, 0, 0x5a5a5a5affffffff, 0x1, 0xffffffffffffffff, 0x5a5a5a5a00000000
    AMO 5, amoxor.w, 0, 0x5a5a5a5affffffff, 0x80000000, 0xffffffffffffffff, 0x5a5a5a5a7fffffff
    AMO 6, amoand.w, 0, 0x5a5a5a5affff0000, 0xff00ff, 0xffffffffffff0000, 0x5a5a5a5a00ff0000
    AMO 7, amoor.w, 0, 0x5a5a5a5a80000000, 0x7fffffff, 0xffffffff80000000, 0x5a5a5a5affffffff
    AMO 8, amomin.w, 0, 0x5a5a5a5a7fffffff, 0x80000000, 0x7fffffff, 0x5a5a5a5a80000000
    AMO 9, amomin.w, 0, 0x5a5a5a5affffffff, 0x1, 0xffffffffffffffff, 0x5a5a5a5affffffff
    AMO 10, amomin.w, 0, 0x5a5a5a5a00000000, 0xffffffffffffffff, 0x0, 0x5a5a5a5affffffff
    AMO 11, amomin.w, 0, 0x5a5a5a5a80000000, 0xffffffff, 0xffffffff80000000, 0x5a5a5a5a80000000
    AMO 12, amomin.w, 0, 0x5a5a5a5a7fffffff, 0x180000000, 0x7fffffff, 0x5a5a5a5a80000000
    AMO 13, amomax.w, 0, 0x5a5a5a5a7fffffff, 0x80000000, 0x7fffffff, 0x5a5a5a5a7fffffff
    AMO 14, amomax.w, 0, 0x5a5a5a5affffffff, 0x1, 0xffffffffffffffff, 0x5a5a5a5a00000001
    AMO 15, amomax.w, 0, 0x5a5a5a5a00000000, 0xffffffffffffffff, 0x0, 0x5a5a5a5a00000000
    AMO 16, amomax.w, 0, 0x5a5a5a5a80000000, 0xffffffff, 0xffffffff80000000, 0x5a5a5a5affffffff
    AMO 17, amomax.w, 0, 0x5a5a5a5a7fffffff, 0x180000000, 0x7fffffff, 0x5a5a5a5a7fffffff
    AMO 18, amominu.w, 0, 0x5a5a5a5a7fffffff, 0x80000000, 0x7fffffff, 0x5a5a5a5a7fffffff
    AMO 19, amominu.w, 0, 0x5a5a5a5affffffff, 0x1, 0xffffffffffffffff, 0x5a5a5a5a00000001
    AMO 20, amominu.w, 0, 0x5a5a5a5a00000000, 0xffffffffffffffff, 0x0, 0x5a5a5a5a00000000
    AMO 21, amominu.w, 0, 0x5a5a5a5a80000000, 0xffffffff, 0xffffffff80000000, 0x5a5a5a5a80000000
    AMO 22, amominu.w, 0, 0x5a5a5a5a7fffffff, 0x180000000, 0x7fffffff, 0x5a5a5a5a7fffffff
    AMO 23, amomaxu.w, 0, 0x5a5a5a5a7fffffff, 0x80000000, 0x7fffffff, 0x5a5a5a5a80000000
    AMO 24, amomaxu.w, 0, 0x5a5a5a5affffffff, 0x1, 0xffffffffffffffff, 0x5a5a5a5affffffff
    AMO 25, amomaxu.w, 0, 0x5a5a5a5a00000000, 0xffffffffffffffff, 0x0, 0x5a5a5a5affffffff
    AMO 26, amomaxu.w, 0, 0x5a5a5a5a80000000, 0xffffffff, 0xffffffff80000000, 0x5a5a5a5affffffff
    AMO 27, amomaxu.w, 0, 0x5a5a5a5a7fffffff, 0x180000000, 0x7fffffff, 0x5a5a5a5a80000000
    # .w at offset 4: bits 31:0 keep 0xa5a5a5a5
    AMO 28, amoswap.w, 4, 0x7fffffffa5a5a5a5, 0x80000000, 0x7fffffff, 0x80000000a5a5a5a5
    AMO 29, amoadd.w, 4, 0xffffffffa5a5a5a5, 0x1, 0xffffffffffffffff, 0xa5a5a5a5
    AMO 30, amomaxu.w, 4, 0x7fffffffa5a5a5a5, 0x80000000, 0x7fffffff, 0x80000000a5a5a5a5
    AMO 31, amomin.w, 4, 0x7fffffffa5a5a5a5, 0x80000000, 0x7fffffff, 0x80000000a5a5a5a5
    # .d
    AMO 32, amoswap.d, 0, 0x8000000000000000, 0x7fffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff
    AMO 33, amoadd.d, 0, 0x7fffffffffffffff, 0x1, 0x7fffffffffffffff, 0x8000000000000000
    AMO 34, amoadd.d, 0, 0xffffffff, 0x1, 0xffffffff, 0x100000000
    AMO 35, amoxor.d, 0, 0xffffffffffffffff, 0x8000000000000001, 0xffffffffffffffff, 0x7ffffffffffffffe
    AMO 36, amoand.d, 0, 0xffffffff00000000, 0xff00ff00ff00ff, 0xffffffff00000000, 0xff00ff00000000
    AMO 37, amoor.d, 0, 0x80000000, 0x7fffffff00000000, 0x80000000, 0x7fffffff80000000
    AMO 38, amomin.d, 0, 0x7fffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff, 0x8000000000000000
    AMO 39, amomin.d, 0, 0xffffffffffffffff, 0x1, 0xffffffffffffffff, 0xffffffffffffffff
    AMO 40, amomin.d, 0, 0x0, 0xffffffffffffffff, 0x0, 0xffffffffffffffff
    AMO 41, amomin.d, 0, 0xffffffff, 0xffffffffffffffff, 0xffffffff, 0xffffffffffffffff
    AMO 42, amomin.d, 0, 0x7fffffff, 0x80000000, 0x7fffffff, 0x7fffffff
    AMO 43, amomin.d, 0, 0x80000000, 0xffffffff80000000, 0x80000000, 0xffffffff80000000
    AMO 44, amomax.d, 0, 0x7fffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff, 0x7fffffffffffffff
    AMO 45, amomax.d, 0, 0xffffffffffffffff, 0x1, 0xffffffffffffffff, 0x1
    AMO 46, amomax.d, 0, 0x0, 0xffffffffffffffff, 0x0, 0x0
    AMO 47, amomax.d, 0, 0xffffffff, 0xffffffffffffffff, 0xffffffff, 0xffffffff
    AMO 48, amomax.d, 0, 0x7fffffff, 0x80000000, 0x7fffffff, 0x80000000
    AMO 49, amomax.d, 0, 0x80000000, 0xffffffff80000000, 0x80000000, 0x80000000
    AMO 50, amominu.d, 0, 0x7fffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff, 0x7fffffffffffffff
    AMO 51, amominu.d, 0, 0xffffffffffffffff, 0x1, 0xffffffffffffffff, 0x1
    AMO 52, amominu.d, 0, 0x0, 0xffffffffffffffff, 0x0, 0x0
    AMO 53, amominu.d, 0, 0xffffffff, 0xffffffffffffffff, 0xffffffff, 0xffffffff
    AMO 54, amominu.d, 0, 0x7fffffff, 0x80000000, 0x7fffffff, 0x7fffffff
    AMO 55, amominu.d, 0, 0x80000000, 0xffffffff80000000, 0x80000000, 0x80000000
    AMO 56, amomaxu.d, 0, 0x7fffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff, 0x8000000000000000
    AMO 57, amomaxu.d, 0, 0xffffffffffffffff, 0x1, 0xffffffffffffffff, 0xffffffffffffffff
    AMO 58, amomaxu.d, 0, 0x0, 0xffffffffffffffff, 0x0, 0xffffffffffffffff
    AMO 59, amomaxu.d, 0, 0xffffffff, 0xffffffffffffffff, 0xffffffff, 0xffffffffffffffff
    AMO 60, amomaxu.d, 0, 0x7fffffff, 0x80000000, 0x7fffffff, 0x80000000
    AMO 61, amomaxu.d, 0, 0x80000000, 0xffffffff80000000, 0x80000000, 0xffffffff80000000
    # 62: rd = x0: memory still updated
    li t0, 40
    sd t0, 0(a2)
    li a3, 2
    amoadd.d zero, a3, (a2)
    ld t0, 0(a2)
    CHECK t0, 42, 62
    # 63: amoswap.w with rd = x0 writes only its word
    li t0, 0x5a5a5a5a00000000
    sd t0, 0(a2)
    li a3, -7
    amoswap.w zero, a3, (a2)
    ld t0, 0(a2)
    CHECK t0, 0x5a5a5a5afffffff9, 63
    # 64: rd == rs1: the address is read before rd is written
    li t0, 100
    sd t0, 0(a2)
    li a3, 5
    mv a5, a2
    amoadd.d a5, a3, (a5)
    CHECK a5, 100, 64
    ld t0, 0(a2)
    CHECK t0, 105, 64
    # 65: rd == rs2: the operand is read before rd is written
    li t0, 0x5a5a5a5a80000000
    sd t0, 0(a2)
    li a3, 0x10
    amoadd.w a3, a3, (a2)
    CHECK a3, 0xffffffff80000000, 65
    ld t0, 0(a2)
    CHECK t0, 0x5a5a5a5a80000010, 65
    # 66: rs2 = x0
    li t0, -1
    sd t0, 0(a2)
    amoswap.d a4, zero, (a2)
    CHECK a4, -1, 66
    ld t0, 0(a2)
    CHECK t0, 0, 66
    # 67: rd == rs1 == rs2: memory = old + the address
    li t0, 3
    sd t0, 0(a2)
    mv a5, a2
    amoadd.d a5, a5, (a5)
    CHECK a5, 3, 67
    ld t0, 0(a2)
    addi t1, a2, 3
    CHECK_EQ t0, t1, 67
    # 68: nothing written outside the two test dwords
    ld t0, -8(a2)
    CHECK t0, GUARD, 68
    ld t0, 16(a2)
    CHECK t0, GUARD, 68

    # ---- LR/SC in M-mode (80-95) --------------------------------------------------------
    # 80-81: LR.d reads, SC.d succeeds (rd = 0) and stores
    li t0, 0x0123456789abcdef
    sd t0, 0(a2)
    lr.d a4, (a2)
    CHECK a4, 0x0123456789abcdef, 80
    li a3, 0x1111
    sc.d a5, a3, (a2)
    CHECK a5, 0, 81
    ld t0, 0(a2)
    CHECK t0, 0x1111, 81
    # 82: a second SC after the successful one fails and stores nothing
    li a3, 0x2222
    sc.d a5, a3, (a2)
    CHECK a5, 1, 82
    ld t0, 0(a2)
    CHECK t0, 0x1111, 82
    # 83: a store that changed the reserved dword makes the SC fail
    lr.d a4, (a2)
    li t0, 0x3333
    sd t0, 0(a2)
    sc.d a5, a3, (a2)
    CHECK a5, 1, 83
    ld t0, 0(a2)
    CHECK t0, 0x3333, 83
    # 84: an SC to another address than the LR's fails and stores nothing ...
    li t0, 0x4444
    sd t0, 8(a2)
    lr.d a4, (a2)
    addi a5, a2, 8
    sc.d a6, a3, (a5)
    CHECK a6, 1, 84
    ld t0, 8(a2)
    CHECK t0, 0x4444, 84
    # 85: ... and ends the reservation all the same
    sc.d a6, a3, (a2)
    CHECK a6, 1, 85
    ld t0, 0(a2)
    CHECK t0, 0x3333, 85
    # 86-87: LR.w sign-extends; SC.w stores the low 32 bits of rs2 into its word only
    li t0, 0x5a5a5a5a80000000
    sd t0, 0(a2)
    lr.w a4, (a2)
    CHECK a4, 0xffffffff80000000, 86
    li a3, 0xffffffff7fffffff
    sc.w a5, a3, (a2)
    CHECK a5, 0, 87
    ld t0, 0(a2)
    CHECK t0, 0x5a5a5a5a7fffffff, 87
    # 88: LR.w with rd == rs1, a positive word
    mv a4, a2
    lr.w a4, (a4)
    CHECK a4, 0x7fffffff, 88
    # 89: SC.w with rd = x0 succeeds (memory shows it)
    li a3, 0x12345678
    sc.w zero, a3, (a2)
    ld t0, 0(a2)
    CHECK t0, 0x5a5a5a5a12345678, 89
    # 90: LR with rd = x0 still reserves
    lr.d zero, (a2)
    li a3, 0x77
    sc.d a5, a3, (a2)
    CHECK a5, 0, 90
    ld t0, 0(a2)
    CHECK t0, 0x77, 90
    # 91: LR.w/SC.w on the upper word of a dword
    li t0, 0x80000000a5a5a5a5
    sd t0, 0(a2)
    addi a5, a2, 4
    lr.w a4, (a5)
    CHECK a4, 0xffffffff80000000, 91
    li a3, 1
    sc.w a6, a3, (a5)
    CHECK a6, 0, 91
    ld t0, 0(a2)
    CHECK t0, 0x00000001a5a5a5a5, 91
    # 92: an SC.w to the other word of the reserved dword fails
    lr.w a4, (a2)
    sc.w a6, a3, (a5)
    CHECK a6, 1, 92
    ld t0, 0(a2)
    CHECK t0, 0x00000001a5a5a5a5, 92
    # 93: an AMO that changed the reserved dword makes the SC fail
    li t0, 10
    sd t0, 0(a2)
    lr.d a4, (a2)
    li a3, 1
    amoadd.d zero, a3, (a2)
    li a3, 99
    sc.d a6, a3, (a2)
    CHECK a6, 1, 93
    ld t0, 0(a2)
    CHECK t0, 11, 93
    # 94: SC with rd == rs2 stores the operand, then writes 0 to it
    lr.d a4, (a2)
    li a3, 0x55
    sc.d a3, a3, (a2)
    CHECK a3, 0, 94
    ld t0, 0(a2)
    CHECK t0, 0x55, 94
    # 95: SC.d after LR.d of a negative dword (the compare is on all 64 bits)
    li t0, 0x8000000000000001
    sd t0, 0(a2)
    lr.d a4, (a2)
    CHECK a4, 0x8000000000000001, 95
    li a3, 2
    sc.d a6, a3, (a2)
    CHECK a6, 0, 95
    ld t0, 0(a2)
    CHECK t0, 2, 95

    # ---- misaligned atomics trap in M (100-127) ------------------------------------------
    MISALIGNED 100, 2, CAUSE_STORE_MISALIGNED, amoswap.w a4, a3, (a5)
    MISALIGNED 101, 2, CAUSE_STORE_MISALIGNED, amoadd.w a4, a3, (a5)
    MISALIGNED 102, 2, CAUSE_STORE_MISALIGNED, amoxor.w a4, a3, (a5)
    MISALIGNED 103, 2, CAUSE_STORE_MISALIGNED, amoand.w a4, a3, (a5)
    MISALIGNED 104, 2, CAUSE_STORE_MISALIGNED, amoor.w a4, a3, (a5)
    MISALIGNED 105, 2, CAUSE_STORE_MISALIGNED, amomin.w a4, a3, (a5)
    MISALIGNED 106, 2, CAUSE_STORE_MISALIGNED, amomax.w a4, a3, (a5)
    MISALIGNED 107, 2, CAUSE_STORE_MISALIGNED, amominu.w a4, a3, (a5)
    MISALIGNED 108, 2, CAUSE_STORE_MISALIGNED, amomaxu.w a4, a3, (a5)
    MISALIGNED 109, 4, CAUSE_STORE_MISALIGNED, amoswap.d a4, a3, (a5)
    MISALIGNED 110, 4, CAUSE_STORE_MISALIGNED, amoadd.d a4, a3, (a5)
    MISALIGNED 111, 4, CAUSE_STORE_MISALIGNED, amoxor.d a4, a3, (a5)
    MISALIGNED 112, 4, CAUSE_STORE_MISALIGNED, amoand.d a4, a3, (a5)
    MISALIGNED 113, 4, CAUSE_STORE_MISALIGNED, amoor.d a4, a3, (a5)
    MISALIGNED 114, 4, CAUSE_STORE_MISALIGNED, amomin.d a4, a3, (a5)
    MISALIGNED 115, 4, CAUSE_STORE_MISALIGNED, amomax.d a4, a3, (a5)
    MISALIGNED 116, 4, CAUSE_STORE_MISALIGNED, amominu.d a4, a3, (a5)
    MISALIGNED 117, 4, CAUSE_STORE_MISALIGNED, amomaxu.d a4, a3, (a5)
    MISALIGNED 118, 1, CAUSE_STORE_MISALIGNED, amoadd.w a4, a3, (a5)
    MISALIGNED 119, 6, CAUSE_STORE_MISALIGNED, amoswap.w a4, a3, (a5)  # across dwords
    MISALIGNED 120, 1, CAUSE_STORE_MISALIGNED, amoadd.d a4, a3, (a5)
    MISALIGNED 121, 12, CAUSE_STORE_MISALIGNED, amomaxu.d a4, a3, (a5)  # into the guard
    MISALIGNED 122, 2, CAUSE_LOAD_MISALIGNED, lr.w a4, (a5)
    MISALIGNED 123, 4, CAUSE_LOAD_MISALIGNED, lr.d a4, (a5)
    MISALIGNED 124, 7, CAUSE_LOAD_MISALIGNED, lr.d a4, (a5)
    MISALIGNED_SC 125, 2, sc.w a4, a3, (a5)
    MISALIGNED_SC 126, 4, sc.d a4, a3, (a5)
    # 127: also with a reservation on the aligned dword the SC names part of
    MISALIGNED_SC 127, 4, RESERVED_SC_D a4, a3, (a5)

    # ---- S-mode with Sv39 (150-) ----------------------------------------------------------
    # l2[0]: 1 GiB identity leaf for the devices (UART, finisher); l2[2]: the same for
    # RAM; l2[1] -> l1 -> l0 maps the test pages: VA_RO read-only, VA_RW read-write,
    # VA_UNMAPPED nothing
    li a1, 0
    SETPTE l2, 0, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    li a1, 0x80000000
    SETPTE l2, 2, a1, PTE_V|PTE_R|PTE_W|PTE_X|PTE_A|PTE_D
    la a1, l1
    SETPTE l2, 1, a1, PTE_V
    la a1, l0
    SETPTE l1, 0, a1, PTE_V
    la a1, page_ro
    SETPTE l0, 0, a1, PTE_V|PTE_R|PTE_A|PTE_D
    la a1, page_rw
    SETPTE l0, 1, a1, PTE_V|PTE_R|PTE_W|PTE_A|PTE_D
    la t0, l2
    srli t0, t0, 12
    li t1, SATP_SV39
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    # PMP: give S-mode all memory (NAPOT over everything)
    PMP_OPEN
    # misaligned and page-fault exceptions go to S
    li t0, (1 << CAUSE_LOAD_MISALIGNED) | (1 << CAUSE_STORE_MISALIGNED) | (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_STORE_PAGE_FAULT)
    csrw medeleg, t0
    li s1, 0
    ENTER_S s_code, strap

s_code:
    li s6, VA_RO
    li s7, VA_RW
    li s8, VA_UNMAPPED
    li s4, 0
    # 150: LR.d from the read-only page works
    lr.d a4, (s6)
    CHECK s4, 0, 150
    CHECK a4, 0x0123456789abcdef, 150
    # 151: LR.w from it sign-extends
    addi a5, s6, 8
    lr.w a4, (a5)
    CHECK s4, 0, 151
    CHECK a4, 0xffffffff80000000, 151
    # 152-169: every AMO to the read-only page faults and changes nothing
    AMO_FAULT 152, s6, amoswap.w
    AMO_FAULT 153, s6, amoadd.w
    AMO_FAULT 154, s6, amoxor.w
    AMO_FAULT 155, s6, amoand.w
    AMO_FAULT 156, s6, amoor.w
    AMO_FAULT 157, s6, amomin.w
    AMO_FAULT 158, s6, amomax.w
    AMO_FAULT 159, s6, amominu.w
    AMO_FAULT 160, s6, amomaxu.w
    AMO_FAULT 161, s6, amoswap.d
    AMO_FAULT 162, s6, amoadd.d
    AMO_FAULT 163, s6, amoxor.d
    AMO_FAULT 164, s6, amoand.d
    AMO_FAULT 165, s6, amoor.d
    AMO_FAULT 166, s6, amomin.d
    AMO_FAULT 167, s6, amomax.d
    AMO_FAULT 168, s6, amominu.d
    AMO_FAULT 169, s6, amomaxu.d
    # 170-171: an SC to the read-only page, reserved by an LR there: store/AMO page fault
    addi a5, s6, 16
    lr.d a4, (a5)
    AMO_FAULT 170, s6, sc.d
    lr.w a4, (a5)
    AMO_FAULT 171, s6, sc.w
    # 172-175: AMOs to the unmapped page: store/AMO page faults too
    AMO_FAULT 172, s8, amoadd.w
    AMO_FAULT 173, s8, amoswap.d
    AMO_FAULT 174, s8, amomaxu.d
    AMO_FAULT 175, s8, amoand.w
    # 176: an LR from it is a load page fault
    li s4, 0
    lr.d a4, (s8)
    CHECK s4, CAUSE_LOAD_PAGE_FAULT, 176
    CHECK_EQ s5, s8, 176
    # 177: an AMO on the read-write page works
    li t0, 0x5a5a5a5a7fffffff
    sd t0, 0(s7)
    li a3, 1
    li s4, 0
    amoadd.w a4, a3, (s7)
    CHECK s4, 0, 177
    CHECK a4, 0x7fffffff, 177
    ld t0, 0(s7)
    CHECK t0, 0x5a5a5a5a80000000, 177
    # 178: so do LR/SC
    lr.d a4, (s7)
    CHECK a4, 0x5a5a5a5a80000000, 178
    li a3, -2
    sc.d a6, a3, (s7)
    CHECK a6, 0, 178
    ld t0, 0(s7)
    CHECK t0, -2, 178
    # 179: a misaligned AMO there traps to S with stval = the virtual address
    addi a5, s7, 4
    li s4, 0
    amoor.d a4, a3, (a5)
    CHECK s4, CAUSE_STORE_MISALIGNED, 179
    CHECK_EQ s5, a5, 179
    ld t0, 0(s7)
    CHECK t0, -2, 179
    # 180: a misaligned LR: load address misaligned
    addi a5, s7, 2
    li s4, 0
    lr.w a4, (a5)
    CHECK s4, CAUSE_LOAD_MISALIGNED, 180
    CHECK_EQ s5, a5, 180
    CHECK s1, 0, 181            # nothing from S-mode reached M
    PASS

# Trap handlers: record cause and trap value, resume after the (4-byte) instruction
RECORD_AND_SKIP_MTRAP

.balign 4
strap:
    csrr s4, scause
    csrr s5, stval
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    sret

# a0: code for the finisher, a1: the value found, t6: the one expected
fail:
    la t3, msg_got
    jal t5, puts
    mv t4, a1
    jal t5, puthex
    la t3, msg_want
    jal t5, puts
    mv t4, t6
    jal t5, puthex
    la t3, msg_nl
    jal t5, puts
    j finish

# print the NUL-terminated string at t3; returns through t5
puts:
    li t0, UART
1:  lbu t1, 0(t3)
    beqz t1, 2f
    sb t1, 0(t0)
    addi t3, t3, 1
    j 1b
2:  jr t5

# print t4 as 16 hex digits; returns through t5
puthex:
    li t0, UART
    li t2, 60
1:  srl t1, t4, t2
    andi t1, t1, 15
    addi t1, t1, '0'
    li t3, '9'
    ble t1, t3, 2f
    addi t1, t1, 'a' - '9' - 1
2:  sb t1, 0(t0)
    addi t2, t2, -4
    bgez t2, 1b
    jr t5

FINISH_ROUTINE

.data
msg_got:  .asciz "FAIL got=0x"
msg_want: .asciz " want=0x"
msg_nl:   .asciz "\n"
.balign 16
    .dword 0                    # guard (set at run time)
test_dwords:
    .dword 0, 0
    .dword 0                    # guard
.balign 4096
page_ro:
    .dword 0x0123456789abcdef
    .dword 0x5a5a5a5a80000000
    .dword 0xfedcba9876543210
.balign 4096
page_rw: .zero 4096
l0: .zero 4096
l1: .zero 4096
l2: .zero 4096
