# hfence.vvma by address and by ASID (-cpu rv64,h=true, -bios none, M-mode only):
# M reads guest memory as V=1 (mstatus.MPRV with MPV and MPP=S) through a guest table
# (vsatp Sv39, G-stage Bare), takes the mapping away, fences, and must fault: a fence
# that names the page or the guest's ASID drops the translation pemu had cached, and
# so does an hfence.gvma that names the guest's VMID (VMIDLEN 14, as QEMU's).
# (QEMU 7.2 reports these faults as load access faults: built with QEMU72 for it.)
# HOST_LOOP=N instead runs N rounds of an HS-mode loop (host Sv39) that touches 16
# pages and fences the guests with hfence.vvma: the host's TLB must survive.
.include "common.inc"
.option norvc
.option arch, +h
.equ MPRV, 1 << 17
.equ MPV, 1 << 39
.equ GUEST_VA, 0xc0000000       # guest root[3]: a gigapage onto 0x80000000
.equ LEAF, (0x80000000 >> 12) << 10 | 0xcf
.equ ASID, 5

# t2 = the doubleword at the guest VA in \reg (as V=1, VS-mode); a fault counts in s2
.macro GUEST_LOAD_REG reg
    li t0, (3 << 11)
    csrc mstatus, t0
    li t0, MPRV | MPV | (1 << 11)
    csrs mstatus, t0
    ld t2, 0(\reg)
    li t0, MPRV
    csrc mstatus, t0
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    li s2, 0                    # load page faults
    PMP_OPEN
.ifdef HOST_LOOP
    j host_loop
.endif
    la t0, guest_root
    li t1, LEAF
    sd t1, 24(t0)
    srli t0, t0, 12
    li t1, (8 << 60) | (ASID << 44)
    or t0, t0, t1
    csrw 0x280, t0              # vsatp
    csrw 0x680, zero            # hgatp: Bare
    hfence.gvma
    la t3, data
    li t4, 0x80000000
    sub t3, t3, t4              # data's offset in the gigapage
    li t4, GUEST_VA
    add s3, t3, t4              # data's guest VA
    # cached, then unmapped: a fence of that page drops it
    GUEST_LOAD_REG s3
    EXPECT t2, 0x1234, 1
    la t0, guest_root
    sd zero, 24(t0)
    hfence.vvma s3, zero
    GUEST_LOAD_REG s3
    EXPECT s2, 1, 2
    # mapped again and cached; unmapped: a fence of the guest's ASID drops it
    la t0, guest_root
    li t1, LEAF
    sd t1, 24(t0)
    hfence.vvma
    GUEST_LOAD_REG s3
    EXPECT t2, 0x1234, 3
    la t0, guest_root
    sd zero, 24(t0)
    li t5, ASID
    hfence.vvma zero, t5
    GUEST_LOAD_REG s3
    EXPECT s2, 2, 4
    # VMIDLEN 14 (as KVM probes it: all VMID bits written, with a G-stage mode)
    li t0, (8 << 60) | (0x3fff << 44)
    csrw 0x680, t0
    csrr t1, 0x680
    srli t1, t1, 44
    li t0, 0xffff
    and t1, t1, t0
    EXPECT t1, 0x3fff, 5
    # VMID 1's translation cached; under VMID 2 unmapped; hfence.gvma of VMID 1
    # drops it, so VMID 1 faults again
    li t0, 1 << 44
    csrw 0x680, t0
    la t0, guest_root
    li t1, LEAF
    sd t1, 24(t0)
    hfence.gvma
    GUEST_LOAD_REG s3
    EXPECT t2, 0x1234, 6
    li t0, 2 << 44
    csrw 0x680, t0
    la t0, guest_root
    sd zero, 24(t0)
    li t5, 1
    hfence.gvma zero, t5
    li t0, 1 << 44
    csrw 0x680, t0
    GUEST_LOAD_REG s3
    EXPECT s2, 3, 7
    PASS

.ifdef HOST_LOOP
host_loop:
    la t0, host_root
    li t1, LEAF
    sd t1, 16(t0)               # VA 0x80000000.. -> PA 0x80000000
    li t1, 0xcf
    sd t1, 0(t0)                # VA 0.. -> PA 0 (the UART, the finisher)
    srli t0, t0, 12
    li t1, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    ENTER_S host_s, host_s
host_s:
    li s0, HOST_LOOP
1:  la t0, pages
    li t1, 16
2:  ld t2, 0(t0)
    addi t2, t2, 1
    sd t2, 0(t0)
    li t3, 4096
    add t0, t0, t3
    addi t1, t1, -1
    bnez t1, 2b
    hfence.vvma
    addi s0, s0, -1
    bnez s0, 1b
    PASS
.endif

.balign 4
mtrap:
    csrr t0, mcause
.ifdef QEMU72
    li t1, 5                    # QEMU 7.2: an access fault where the spec says page fault
    beq t0, t1, 2f
.endif
    li t1, 13
    bne t0, t1, 1f
2:  addi s2, s2, 1
    li t0, MPRV
    csrc mstatus, t0
    csrr t0, mepc
    addi t0, t0, 4
    csrw mepc, t0
    li t0, (3 << 11)            # back to M
    csrs mstatus, t0
    mret
1:  li a0, (99 << 16) | 0x3333
    j finish

FINISH_ROUTINE

.balign 8
data: .dword 0x1234
.balign 4096
guest_root: .fill 512, 8, 0
.ifdef HOST_LOOP
host_root: .fill 512, 8, 0
pages: .fill 16 * 512, 8, 0
.endif
