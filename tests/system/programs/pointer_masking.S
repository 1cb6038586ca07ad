# Pointer masking (Smmpm, Smnpm, Ssnpm) against the spec, bare metal (-cpu max): the
# PMM fields' WARL rules, masking in M (mseccfg), S (menvcfg), U (senvcfg) and for
# hlv/hsv (henvcfg, hstatus.HUPMM) with PMLEN 7 and 16; zero extension for physical
# addresses (M, Bare) and sign extension under Sv39; loads, stores, AMOs, LR/SC, FP,
# vector and cbo.zero through tagged pointers; instruction fetch never masked; MXR and
# MPRV; a fault's mtval is the transformed address; masking off: a tagged pointer faults.
# With --defsym ABSENT=1 (-cpu rv64): mseccfg is illegal and the PMM fields read 0.
#
# Every trap goes to M (no delegation).  An ecall from any mode continues in M at s11
# (0: the finish routine); any other trap records mcause/mtval in s1/s2 and skips the
# instruction (a fetch fault returns to ra).
.include "common.inc"
.option norvc
.option arch, +h, +v, +zicboz
.equ MSECCFG, 0x747
.equ PMM_OFF, 0
.equ PMM_RESERVED, 1 << 32
.equ PMM7, 2 << 32
.equ PMM16, 3 << 32
.equ HUPMM7, 2 << 48
.equ PTE_VRWXAD, 0xCF
.equ PTE_U, 0x10
.equ HIGH_BASE, 0xFFFFFFC080000000   # the Sv39 high-half alias of 0x80000000
.equ U_BASE, 0x40000000              # U-mode's alias of 0x80000000

.macro CLEAR
    li s1, 0
    li s2, 0
.endm

# \dst = \src | (\tag << \shift)
.macro TAG dst, src, tag, shift
    li t0, \tag
    slli t0, t0, \shift
    or \dst, \src, t0
.endm

.macro SET_CSR csr, value
    li t0, \value
    csrw \csr, t0
.endm

# enter \mode (0 U, 1 S) at \label; its ecall continues in M at \back
.macro ENTER mode, label, back
    la s11, \back
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, \mode << 11
    csrs mstatus, t0
    la t0, \label
    csrw mepc, t0
    mret
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    li t0, (1 << 13) | (1 << 9)      # FS and VS on
    csrs mstatus, t0
    la s3, buf                       # s3: the untagged buffer

.ifdef ABSENT
    CLEAR
    csrr t1, MSECCFG                 # 1: no Smmpm: mseccfg is an illegal CSR
    EXPECT s1, 2, 1
    SET_CSR menvcfg, PMM16           # 2: no Smnpm: menvcfg.PMM reads 0
    csrr t1, menvcfg
    srli t1, t1, 32
    EXPECT t1, 0, 2
    SET_CSR senvcfg, PMM16           # 3: no Ssnpm: senvcfg.PMM reads 0
    csrr t1, senvcfg
    EXPECT t1, 0, 3
    TAG s4, s3, 0x5A, 57             # 4: nothing masks: a tagged pointer faults
    CLEAR
    ld t1, 0(s4)
    EXPECT s1, 5, 4
    PASS
.else
    # -- M-mode: mseccfg.PMM (physical addresses: zero extension) -----------------------
    csrr t1, MSECCFG                 # 1: off after reset
    EXPECT t1, 0, 1
    SET_CSR MSECCFG, PMM_RESERVED    # 2: the reserved value leaves the field as it was
    csrr t1, MSECCFG
    EXPECT t1, 0, 2
    TAG s4, s3, 0x5A, 57             # s4: tagged in bits 63:57
    CLEAR
    ld t1, 0(s4)                     # 3: masking off: the tagged pointer faults
    EXPECT s1, 5, 3
    SET_CSR MSECCFG, PMM7            # 4: PMLEN 7
    csrr t1, MSECCFG
    EXPECT t1, PMM7, 4
    ld t1, 0(s4)                     # 5: the tag is ignored
    ld t2, 0(s3)
    EXPECT_EQ t1, t2, 5
    li t1, 0x1234                    # 6: stores too
    sd t1, 8(s4)
    ld t2, 8(s3)
    EXPECT t2, 0x1234, 6
    TAG s5, s3, 0xFF, 56             # s5: tagged in bits 63:56
    CLEAR
    ld t1, 0(s5)                     # 7: PMLEN 7 keeps bit 56: an access fault
    EXPECT s1, 5, 7
    TAG t1, s3, 1, 56                # 8: mtval is the transformed (zero-extended) address
    EXPECT_EQ s2, t1, 8
    SET_CSR MSECCFG, PMM16           # 9: PMLEN 16 masks bit 56 as well
    CLEAR
    ld t1, 0(s5)
    ld t2, 0(s3)
    EXPECT_EQ t1, t2, 9
    EXPECT s1, 0, 9
    SET_CSR MSECCFG, PMM_RESERVED    # 10: reserved: still PMLEN 16
    csrr t1, MSECCFG
    EXPECT t1, PMM16, 10
    li t2, 5                         # 11: an AMO through the tagged pointer
    amoadd.d t1, t2, (s5)
    ld t2, 0(s3)
    sub t2, t2, t1
    EXPECT t2, 5, 11
    lr.d t1, (s5)                    # 12: LR/SC
    li t2, 0x77
    sc.d t3, t2, (s5)
    EXPECT t3, 0, 12
    ld t2, 0(s3)
    EXPECT t2, 0x77, 12
    fld f1, 0(s5)                    # 13: FP loads and stores
    fsd f1, 16(s5)
    ld t2, 16(s3)
    EXPECT t2, 0x77, 13
    vsetivli t0, 2, e64, m1, ta, ma  # 14: vector unit-stride load and store
    vle64.v v1, (s5)
    addi t1, s5, 32
    vse64.v v1, (t1)
    ld t2, 32(s3)
    EXPECT t2, 0x77, 14
    ld t2, 40(s3)
    EXPECT t2, 0x1234, 14
    li t1, 16                        # 15: strided and indexed
    vlse64.v v2, (s5), t1            # elements 0 and 2: 0x77, 0x77
    vmv.x.s t2, v2
    EXPECT t2, 0x77, 15
    vid.v v3
    vsll.vi v3, v3, 3                # offsets 0, 8
    vluxei64.v v4, (s5), v3
    vslidedown.vi v4, v4, 1
    vmv.x.s t2, v4
    EXPECT t2, 0x1234, 15
    la s6, block                     # 16: cbo.zero through a tagged pointer
    TAG t1, s6, 0xFFFF, 48
    cbo.zero (t1)
    ld t2, 56(s6)
    EXPECT t2, 0, 16
    la t1, fetch_target              # 17: instruction fetch is not masked
    TAG t1, t1, 0xFF, 56
    CLEAR
    jalr ra, 0(t1)
    EXPECT s1, 1, 17
    li t0, 1 << 19                   # 18: MXR has no effect in M (no MPRV): still masked
    csrs mstatus, t0
    ld t1, 0(s5)
    csrc mstatus, t0
    EXPECT t1, 0x77, 18
    SET_CSR MSECCFG, PMM_OFF

    # -- MPRV: M's data accesses as S (menvcfg.PMM, Bare: zero extension) ---------------
    SET_CSR menvcfg, PMM7            # 20: menvcfg.PMM
    SET_CSR menvcfg, PMM_RESERVED    #     (the reserved value keeps PMLEN 7)
    csrr t1, menvcfg
    srli t1, t1, 32
    EXPECT t1, 2, 20
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, (1 << 17) | (1 << 11)     # MPRV, MPP = S
    csrs mstatus, t0
    CLEAR
    ld t1, 0(s4)                     # 21: S's PMLEN 7 applies
    EXPECT s1, 0, 21
    li t0, (1 << 17) | (1 << 19)     # 22: with MXR in effect, no masking
    csrs mstatus, t0
    ld t1, 0(s4)
    li t0, (1 << 17) | (1 << 19)
    csrc mstatus, t0
    EXPECT s1, 5, 22

    # -- S-mode under Sv39 (sign extension), menvcfg.PMM = PMLEN 16 ----------------------
    la t1, l2
    li t2, 0x80000000 >> 2
    ori t3, t2, PTE_VRWXAD
    sd t3, 2 * 8(t1)                 # 0x80000000: identity (S)
    ori t3, t2, PTE_VRWXAD | PTE_U
    sd t3, 1 * 8(t1)                 # 0x40000000: the same memory for U
    ori t3, t2, PTE_VRWXAD
    addi t4, t1, 1024
    sd t3, 258 * 8 - 1024(t4)        # HIGH_BASE: the same memory, high half
    srli t1, t1, 12
    li t0, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    SET_CSR menvcfg, PMM16
    ENTER 1, s_code, s_done
s_code:
    TAG s4, s3, 0xABCD, 48           # 30: a tag in bits 63:48 (bit 47 clear)
    CLEAR
    ld t1, 0(s4)
    EXPECT s1, 0, 30
    EXPECT t1, 0x77, 30
    li t1, HIGH_BASE - 0x80000000    # 31: sign extension: a high-half address, tagged
    add t1, t1, s3
    slli t1, t1, 16
    srli t1, t1, 16
    TAG s6, t1, 0x1234, 48
    ld t1, 0(s6)
    EXPECT s1, 0, 31
    EXPECT t1, 0x77, 31
    li t1, 0x1000                    # 32: an unmapped page: mtval is the masked address
    TAG t1, t1, 0x5555, 48
    ld t1, 0(t1)
    EXPECT s1, 13, 32
    EXPECT s2, 0x1000, 32
    li t0, 1 << 19                   # 33: MXR: no masking in S
    csrs sstatus, t0
    CLEAR
    ld t1, 0(s4)
    li t0, 1 << 19
    csrc sstatus, t0
    EXPECT s1, 13, 33
    csrw satp, zero                  # 34: Bare: zero extension, bit 47 stays
    sfence.vma
    CLEAR
    ld t1, 0(s4)                     # (bits 63:48 still ignored)
    EXPECT s1, 0, 34
    TAG t1, s3, 0x10001, 47          # bit 47 and bit 63
    ld t1, 0(t1)
    EXPECT s1, 5, 34
    ecall
s_done:

    # -- U-mode under Sv39, senvcfg.PMM = PMLEN 7 ---------------------------------------
    SET_CSR senvcfg, PMM7
    SET_CSR senvcfg, PMM_RESERVED    # 40: the reserved value keeps PMLEN 7
    csrr t1, senvcfg
    EXPECT t1, PMM7, 40
    la t1, l2
    srli t1, t1, 12
    li t0, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    la s11, u_done                   # ENTER with U's alias of u_code
    li t0, 3 << 11
    csrc mstatus, t0
    la t0, u_code
    li t1, 0x80000000 - U_BASE
    sub t0, t0, t1
    csrw mepc, t0
    mret
u_code:
    la s3, buf                       # U's alias (pc-relative)
    TAG s4, s3, 0x7F, 57             # 41: a tag in bits 63:57
    CLEAR
    ld t1, 0(s4)
    EXPECT s1, 0, 41
    EXPECT t1, 0x77, 41
    TAG s4, s3, 1, 56                # 42: bit 56 set: sign-extended, a page fault
    ld t1, 0(s4)
    EXPECT s1, 13, 42
    TAG t1, s3, 0xFF, 56
    EXPECT_EQ s2, t1, 42
    ecall
u_done:
    csrw satp, zero
    sfence.vma
    SET_CSR senvcfg, PMM_OFF
    la s3, buf

    # -- hlv/hsv: henvcfg.PMM as VS (SPVP), senvcfg.PMM / HUPMM as VU; hlvx unmasked ----
    SET_CSR henvcfg, PMM16
    SET_CSR henvcfg, PMM_RESERVED    # 50: the reserved value keeps PMLEN 16
    csrr t1, henvcfg
    srli t1, t1, 32
    EXPECT t1, 3, 50
    li t0, 1 << 8                    # SPVP: as VS-mode
    csrs hstatus, t0
    TAG s4, s3, 0xFFFF, 48
    CLEAR
    hlv.d t1, (s4)                   # 51: hlv through a tagged pointer
    EXPECT s1, 0, 51
    EXPECT t1, 0x77, 51
    li t1, 0x99                      # 52: hsv
    hsv.d t1, (s4)
    ld t2, 0(s3)
    EXPECT t2, 0x99, 52
    hlvx.wu t1, (s4)                 # 53: hlvx is never masked
    EXPECT s1, 5, 53
    li t0, 1 << 8                    # 54: as VU-mode from M: senvcfg.PMM (off)
    csrc hstatus, t0
    CLEAR
    hlv.d t1, (s4)
    EXPECT s1, 5, 54
    SET_CSR senvcfg, PMM16           # 55: senvcfg.PMM on
    CLEAR
    hlv.d t1, (s4)
    EXPECT s1, 0, 55
    SET_CSR hstatus, HUPMM7 >> 1     # 56: hstatus.HUPMM: the reserved value reads 0
    csrr t1, hstatus
    srli t1, t1, 48
    EXPECT t1, 0, 56
    SET_CSR hstatus, HUPMM7          # 57: PMLEN 7 is kept
    csrr t1, hstatus
    srli t1, t1, 48
    EXPECT t1, 2, 57
    SET_CSR hstatus, (3 << 48) | (1 << 9)  # 58: hlv in U-mode (HU): HUPMM, not senvcfg
    SET_CSR senvcfg, PMM7
    ENTER 0, hu_code, hu_done
hu_code:
    TAG t1, s3, 0xFF, 48             # bits 55:48: only PMLEN 16 masks them
    CLEAR
    hlv.d t2, (t1)
    EXPECT s1, 0, 58
    EXPECT t2, 0x99, 58
    ecall
hu_done:

    # -- VS-mode (V=1): henvcfg.PMM; vsatp Bare: zero extension -------------------------
    csrw hstatus, zero
    SET_CSR henvcfg, PMM16
    li t0, 1 << 39                   # MPV: mret enters V=1
    csrs mstatus, t0
    ENTER 1, vs_code, vs_done
vs_code:
    TAG s4, s3, 0xFFFF, 48           # 60: VS-mode's masking
    CLEAR
    ld t1, 0(s4)
    EXPECT s1, 0, 60
    EXPECT t1, 0x99, 60
    ecall
vs_done:
    li t0, 3 << 11                   # 61: M with MPRV and MPV: VS's masking
    csrc mstatus, t0
    li t0, (1 << 17) | (1 << 11) | (1 << 39)
    csrs mstatus, t0
    CLEAR
    ld t1, 0(s4)
    EXPECT s1, 0, 61
    SET_CSR henvcfg, PMM_OFF         # 62: and none once henvcfg.PMM is off
    ld t1, 0(s4)
    li t0, (1 << 17) | (1 << 39)
    csrc mstatus, t0
    EXPECT s1, 5, 62
    PASS
.endif

fetch_target:
    ret                              # reached only if the fetch were masked

mtrap:
    csrr t5, mcause
    li t4, 8
    beq t5, t4, 2f
    li t4, 9
    beq t5, t4, 2f
    li t4, 10
    beq t5, t4, 2f
    li t4, 11
    beq t5, t4, 2f
    mv s1, t5
    csrr s2, mtval
    li t4, 1
    bne t5, t4, 1f
    csrw mepc, ra                    # a fetch fault: back to the caller
    mret
1:  csrr t4, mepc
    addi t4, t4, 4
    csrw mepc, t4
    mret
2:  beqz s11, finish_m               # an ecall: continue in M
    jr s11

finish:                              # a0: the finisher's value; from any mode
    li s11, 0
    ecall
finish_m:
    csrw satp, zero
    li t0, UART
    li t1, 'D'
    sb t1, 0(t0)
    li t1, 'O'
    sb t1, 0(t0)
    li t1, 'N'
    sb t1, 0(t0)
    li t1, 'E'
    sb t1, 0(t0)
    li t1, '\n'
    sb t1, 0(t0)
    li t0, FINISHER
    sw a0, 0(t0)
1:  j 1b

.align 6
buf:
    .dword 0x1122334455667788, 0, 0, 0, 0, 0, 0, 0
block:
    .dword 1, 2, 3, 4, 5, 6, 7, 8
.align 12
l2:
    .zero 4096
