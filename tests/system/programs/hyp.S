# The hypervisor extension (-cpu rv64,h=true): M drops to HS, which builds a VS guest
# with two-stage tables (vsatp Sv39 over hgatp Sv39x4), uses hlv/hsv/hfence on it,
# enters it with sret (hstatus.SPV) and handles what the guest traps with.  Each
# event prints one line on the UART; the test compares the output with QEMU's.
#
# Guest physical = host physical for 0x80000000..0xbfffffff (a G-stage gigapage);
# guest physical 0xc0000000.. is not mapped (guest-page faults).  The guest's own
# tables map VA 0x80000000.. to GPA 0x80000000 (S pages), VA 0x40000000.. to the
# unmapped GPA 0xc0000000, VA 0xc0000000.. to GPA 0x80000000 again, VA 0x100000000..
# to GPA 0x80000000 as user pages (the guest's VU code runs there), and nothing at
# VA 0.  At the end M-mode reads guest memory with mstatus.MPRV and MPV.
.include "common.inc"
.option norvc
.option arch, +h

.equ SPV, (1 << 7)
.equ SPVP, (1 << 8)
.equ VTW, (1 << 21)
.equ HSTATUS_SHOWN, 0x1c0          # GVA, SPV, SPVP
.equ SSIP, (1 << 1)
.equ STIP, (1 << 5)
.equ VSSIP, (1 << 2)
.equ VSTIP, (1 << 6)
.equ PTE_LEAF_S, 0xcf              # D A X W R V
.equ PTE_LEAF_U, 0xdf              # D A U X W R V

# print the string at \label, then a register in hex, then a newline
.macro SHOW label, reg
    mv a0, \reg
    la a1, \label
    call show
.endm

.macro PRINT label
    la a1, \label
    call puts
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    la sp, m_stack_top
    PMP_OPEN
    csrr t0, misa
    srli t0, t0, 7                 # 'H'
    andi t0, t0, 1
    SHOW s_misa_h, t0
    li t0, 7
    csrw mcounteren, t0
    li t0, 1
    slli t0, t0, 63                # menvcfg.STCE: Sstc, and so vstimecmp
    csrs menvcfg, t0
    # HS handles the guest's traps: ecall from VS (10), the guest-page faults (20,
    # 21, 23), virtual instructions (22), page faults and illegal instructions
    li t0, (1 << 10) | (0xf << 20) | (1 << 2) | (1 << 8) | (1 << 12) | (1 << 13) | (1 << 15)
    csrw medeleg, t0
    csrr t0, medeleg
    SHOW s_medeleg, t0
    li t0, 0x222                   # SSI, STI, SEI to HS
    csrw mideleg, t0
    csrr t0, mideleg               # the VS bits (and SGEI) are always delegated
    SHOW s_mideleg, t0
    ENTER_S hs_main, hs_trap

# -- HS-mode -------------------------------------------------------------------------------
hs_main:
    la t0, hs_stack_top
    csrw sscratch, t0
    la sp, hs_run_stack_top
    # G-stage root (16 KiB): GPA 0x80000000 -> HPA 0x80000000, a U gigapage
    la t0, g_root
    li t1, ((0x80000000 >> 12) << 10) | PTE_LEAF_U
    sd t1, 16(t0)                  # index 2
    # VS-stage root: VA 0x80000000 -> GPA 0x80000000, VA 0x40000000 -> GPA 0xc0000000
    la t0, vs_root
    li t1, ((0x80000000 >> 12) << 10) | PTE_LEAF_S
    sd t1, 16(t0)
    li t1, ((0xc0000000 >> 12) << 10) | PTE_LEAF_S
    sd t1, 8(t0)
    li t1, ((0x80000000 >> 12) << 10) | PTE_LEAF_S
    sd t1, 24(t0)
    li t1, ((0x80000000 >> 12) << 10) | PTE_LEAF_U
    sd t1, 32(t0)
    la t0, g_root
    srli t0, t0, 12
    li t1, (8 << 60)               # Sv39x4
    or t0, t0, t1
    csrw hgatp, t0
    csrr t0, hgatp
    srli t0, t0, 60
    SHOW s_hgatp_mode, t0
    la t0, vs_root
    srli t0, t0, 12
    li t1, (8 << 60)
    or t0, t0, t1
    csrw vsatp, t0
    hfence.gvma
    hfence.vvma
    li t0, (1 << 8) | (1 << 13) | (1 << 15)  # the guest's page faults, VU's ecalls
    csrw hedeleg, t0
    li t0, VSSIP | VSTIP
    csrw hideleg, t0
    csrr t0, hideleg
    SHOW s_hideleg, t0
    csrr t0, hstatus
    srli t0, t0, 32
    SHOW s_vsxl, t0

    # hlv/hsv as the guest's S-mode (SPVP) would access its memory
    li t0, SPVP
    csrs hstatus, t0
    la s0, shared
    li t1, 0x1122334455667788
    sd t1, 0(s0)
    hlv.d t2, (s0)
    SHOW s_hlv_d, t2
    hlv.b t2, (s0)
    SHOW s_hlv_b, t2
    addi t3, s0, 7
    hlv.b t2, (t3)                 # 0x11: sign-extended stays positive
    SHOW s_hlv_b7, t2
    li t1, -2
    hsv.w t1, (s0)
    ld t2, 0(s0)
    SHOW s_hsv_w, t2
    hlv.wu t2, (s0)
    SHOW s_hlv_wu, t2
    hlvx.hu t2, (s0)               # the page is executable for the guest
    SHOW s_hlvx, t2
    # a guest VA whose GPA the G-stage lacks: a load guest-page fault, taken to HS
    li t3, 0x40000010
    hlv.d t2, (t3)
    # (hlv with SPVP=0 on the guest's S pages is a page fault by the spec, but QEMU
    # 7.2 raises a load access fault to M: tests/system/test_hyp.py checks it alone)
    # the guest's root table at an unmapped GPA: the implicit read faults in G-stage
    csrr s1, vsatp
    li t0, (8 << 60) | (0xc0004000 >> 12)
    csrw vsatp, t0
    hfence.vvma                    # a new vsatp needs a fence (QEMU caches the old one)
    hlv.d t2, (s0)                 # (an hsv's is a store fault; QEMU 7.2 says load)
    csrw vsatp, s1
    hfence.vvma

    # enter the guest at VS-mode, its traps at vs_trap
    la t0, vs_trap
    csrw vstvec, t0
    la t0, vs_stack_top
    csrw vsscratch, t0
    li t0, SPV | VTW
    csrs hstatus, t0
    li t0, (1 << 8)                # SPP = S
    csrs sstatus, t0
    la t0, vs_main
    csrw sepc, t0
    sret

# HS trap handler: ecalls from the guest are its requests; anything else is shown
hs_trap:
    csrrw sp, sscratch, sp
    addi sp, sp, -64
    sd ra, 0(sp)
    sd a0, 8(sp)
    sd a1, 16(sp)
    sd a2, 24(sp)
    sd t0, 32(sp)
    sd t1, 40(sp)
    sd t2, 48(sp)
    csrr t0, scause
    li t1, 10
    bne t0, t1, hs_show
    li t1, 1
    beq a7, t1, hs_set_vssip
    li t1, 2
    beq a7, t1, hs_set_vstip
    li t1, 4
    beq a7, t1, hs_clear_vstip
    li t1, 5
    beq a7, t1, hs_give_vstimecmp
    li t1, 99
    beq a7, t1, hs_done
    mv a2, a1
    SHOW s_ecall_a0, a0
    SHOW s_ecall_a1, a2
    csrr t0, hstatus
    andi t0, t0, HSTATUS_SHOWN
    SHOW s_hstatus, t0
    j hs_next
hs_set_vssip:
    li t0, VSSIP
    csrs hvip, t0
    j hs_next
hs_set_vstip:
    li t0, VSTIP
    csrs hvip, t0
    j hs_next
hs_clear_vstip:
    li t0, VSTIP
    csrc hvip, t0
    j hs_next
hs_give_vstimecmp:                 # the guest may use stimecmp (vstimecmp) and time
    li t0, 2
    csrs hcounteren, t0
    li t0, 1
    slli t0, t0, 63
    csrs henvcfg, t0
    csrr t0, henvcfg
    srli t0, t0, 63
    SHOW s_henvcfg_stce, t0
    li t0, 1000
    csrw htimedelta, t0
    j hs_next
hs_show:
    SHOW s_hs_cause, t0
    csrr t0, stval
    SHOW s_stval, t0
    csrr t0, htval
    SHOW s_htval, t0
    csrr t0, hstatus
    andi t0, t0, HSTATUS_SHOWN
    SHOW s_hstatus, t0
    csrr t0, sstatus
    srli t0, t0, 8
    andi t0, t0, 1
    SHOW s_spp, t0
hs_next:
    csrr t0, scause
    li t1, 20                      # a fetch guest-page fault: back to the caller (ra)
    bne t0, t1, 1f
    ld t0, 0(sp)
    csrw sepc, t0
    j 2f
1:  csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
2:
    ld ra, 0(sp)
    ld a0, 8(sp)
    ld a1, 16(sp)
    ld a2, 24(sp)
    ld t0, 32(sp)
    ld t1, 40(sp)
    ld t2, 48(sp)
    addi sp, sp, 64
    csrrw sp, sscratch, sp
    sret
hs_done:
    ecall                          # to M, for its MPRV+MPV access

# -- the guest: VS-mode, two-stage translated ----------------------------------------------
vs_main:
    la sp, vs_run_stack_top
    csrr a0, satp                  # vsatp
    srli a0, a0, 60
    csrr a1, stvec                 # vstvec
    la t0, vs_trap
    sub a1, a1, t0
    li a7, 0
    ecall
    # memory through both stages
    la s0, shared
    li t0, 0xabcdef
    sd t0, 8(s0)
    ld a0, 8(s0)
    csrr a1, sstatus
    andi a1, a1, 0x122             # SPP, SPIE, SIE
    ecall
    # the guest's own page fault: delegated to it by hedeleg
    ld t0, 0(zero)
    # its VA maps to a GPA G-stage lacks: a guest-page fault for HS (a store)
    li t1, 0x40000008
    sd t0, 0(t1)
    # a call to guest code whose GPA G-stage lacks: a fetch guest-page fault
    li t1, 0x40000100
    jalr t1
    # hypervisor CSRs, hfence, wfi with VTW, time without hcounteren: virtual insns
    csrr t0, hstatus
    hfence.vvma
    wfi
    rdtime t0
    csrr t0, mstatus               # an M CSR: illegal
    sfence.vma                     # allowed (VTVM clear)
    # virtual interrupts: HS injects VSSIP and VSTIP through hvip
    li t0, SSIP | STIP
    csrs sie, t0
    li a7, 1
    ecall
    csrsi sstatus, 2               # SIE: the software interrupt arrives
    nop
    csrci sstatus, 2
    li a7, 2
    ecall
    csrsi sstatus, 2               # now the timer
    nop
    csrci sstatus, 2
    csrr a0, sip
    li a1, 0
    li a7, 0
    ecall
    # the guest's own Sstc timer: stimecmp is vstimecmp once HS allows it
    csrr t0, stimecmp              # not yet: a virtual instruction
    li a7, 5
    ecall
    li s10, 1                      # the handler disarms stimecmp itself
    li s9, 0
    rdtime t0
    addi t0, t0, 500
    csrw stimecmp, t0
    csrr t1, stimecmp
    sub a0, t1, t0
    li a1, 0
    li a7, 0
    ecall
    csrsi sstatus, 2
1:  beqz s9, 1b                    # until the timer interrupt has been taken
    csrci sstatus, 2
    # the guest's user mode (VU) at its user alias of vu_code
    li t0, (1 << 8)
    csrc sstatus, t0               # SPP = U
    la t0, vu_code
    li t1, 0x80000000 - 0x100000000
    sub t0, t0, t1
    csrw sepc, t0
    sret
vs_after_vu:
    li a7, 99
    ecall

vs_trap:
    csrrw sp, sscratch, sp         # vsscratch
    addi sp, sp, -32
    sd a0, 0(sp)
    sd a1, 8(sp)
    sd a7, 16(sp)
    sd t0, 24(sp)
    csrr a0, scause                # vscause
    csrr a1, stval
    li a7, 0
    ecall
    csrr t0, scause
    bltz t0, vs_interrupt
    li a7, 8                       # VU's ecall with a7 = 7: back to VS-mode
    bne t0, a7, 1f
    ld a7, 16(sp)
    li t0, 7
    bne a7, t0, 1f
    la t0, vs_after_vu
    csrw sepc, t0
    li t0, (1 << 8)
    csrs sstatus, t0
    j vs_trap_out
1:  csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    j vs_trap_out
vs_interrupt:
    slli t0, t0, 1
    srli t0, t0, 1
    li a7, 1
    bne t0, a7, vs_timer
    csrci sip, SSIP                # the guest clears its software interrupt
    j vs_trap_out
vs_timer:
    li s9, 1
    bnez s10, vs_own_timer
    li a7, 4                       # the injected timer: HS withdraws it
    ecall
    j vs_trap_out
vs_own_timer:
    li t0, -1
    csrw stimecmp, t0
vs_trap_out:
    ld a0, 0(sp)
    ld a1, 8(sp)
    ld a7, 16(sp)
    ld t0, 24(sp)
    addi sp, sp, 32
    csrrw sp, sscratch, sp
    sret

# the guest's user code: an ecall for VS, then what VU may not do (virtual instructions)
vu_code:
    li a0, 0x7575
    li a7, 0
    ecall
    wfi
.ifdef VU_SPEC
    # the spec's virtual instructions where QEMU 7.2 raises illegal instructions (its
    # issue 3622): test_hyp.py builds this part for pemu alone
    csrr t0, sstatus
    sret
    sfence.vma
.endif
    li a7, 7
    ecall

# -- M-mode: nothing should arrive here ----------------------------------------------------
mtrap:
    csrr t0, mcause
    li t1, 9
    beq t0, t1, m_mprv
    SHOW s_m_cause, t0
    csrr t0, mtval
    SHOW s_stval, t0
    li a0, (99 << 16) | 0x3333
    j finish

# M-mode's loads as the guest (MPRV, MPP=S, MPV): VA 0xc0000000+x is host 0x80000000+x
m_mprv:
    csrr t0, mstatus
    srli t0, t0, 39                # MPV: 0, the ecall came from HS
    andi t0, t0, 1
    SHOW s_mpv, t0
    la s0, shared
    li t0, 0x5a5a1234
    sd t0, 16(s0)
    li t1, 0x40000000
    add s0, s0, t1                 # the guest's alias of shared
    li t0, (1 << 39) | (1 << 17) | (1 << 11)   # MPV, MPRV, MPP = S
    csrs mstatus, t0
    ld t2, 16(s0)
    li t0, (1 << 17)
    csrc mstatus, t0
    SHOW s_mprv_ld, t2
    PASS

# -- printing ---------------------------------------------------------------------------------
puts:                              # a1: NUL-terminated string (uses t0, t1)
    li t0, UART
1:  lbu t1, 0(a1)
    beqz t1, 2f
    sb t1, 0(t0)
    addi a1, a1, 1
    j 1b
2:  ret

show:                              # a1: label, a0: value in hex, newline (t0-t2, a1)
    mv t2, ra
    call puts
    li t0, UART
    li a1, 60
1:  srl t1, a0, a1
    andi t1, t1, 15
    addi t1, t1, '0'
    li ra, '9'
    ble t1, ra, 2f
    addi t1, t1, 'a' - '0' - 10
2:  sb t1, 0(t0)
    addi a1, a1, -4
    bgez a1, 1b
    li t1, '\n'
    sb t1, 0(t0)
    mv ra, t2
    ret

FINISH_ROUTINE

.section .rodata
s_misa_h:     .asciz "misa.H "
s_medeleg:    .asciz "medeleg "
s_mideleg:    .asciz "mideleg "
s_hgatp_mode: .asciz "hgatp.MODE "
s_hideleg:    .asciz "hideleg "
s_vsxl:       .asciz "hstatus>>32 "
s_hlv_d:      .asciz "hlv.d "
s_hlv_b:      .asciz "hlv.b "
s_hlv_b7:     .asciz "hlv.b+7 "
s_hsv_w:      .asciz "after hsv.w "
s_hlv_wu:     .asciz "hlv.wu "
s_hlvx:       .asciz "hlvx.hu "
s_ecall_a0:   .asciz "guest ecall a0 "
s_ecall_a1:   .asciz "  a1 "
s_hstatus:    .asciz "  hstatus "
s_hs_cause:   .asciz "HS trap scause "
s_stval:      .asciz "  tval "
s_htval:      .asciz "  htval "
s_spp:        .asciz "  SPP "
s_m_cause:    .asciz "M trap mcause "
s_henvcfg_stce: .asciz "henvcfg.STCE "
s_mpv:        .asciz "M from HS: MPV "
s_mprv_ld:    .asciz "M ld with MPRV+MPV "

.data
.balign 16384
g_root:   .zero 16384
vs_root:  .zero 4096
shared:   .zero 64
.balign 16
          .zero 1024
m_stack_top:
          .zero 1024
hs_stack_top:
          .zero 1024
hs_run_stack_top:
          .zero 1024
vs_stack_top:
          .zero 1024
vs_run_stack_top:
