# Sdtrig debug triggers (QEMU 7.2's: two mcontrol/mcontrol6 address matches whose
# action is a breakpoint exception).  M-mode programs the triggers, S-mode code runs
# into them, breakpoints trap to M.  STRICT_TVAL=1 also checks mtval = the matched
# address (pemu); QEMU 7.2 leaves mtval 0, which the spec also allows.
#   1-8    CSR behaviour: tinfo, tselect WARL, tdata1 reset value, the bits a write
#          keeps, writes of other types ignored, tdata3 reads zero
#   9-12   an execute trigger fires before the instruction, in S-mode (cause, mepc,
#          mtval; the instruction has not run), after the handler disarms it the
#          instruction runs
#   13     an execute trigger for U-mode only does not fire in S-mode
#   14-16  mid-block: the instructions before the armed one ran, it did not
#   17     a trigger armed on code that already ran (translated) still fires
#   18-21  a load trigger fires on a load that touches the watched bytes (mepc, the
#          destination is unchanged), not on one below them
#   22-26  a store trigger fires before the store (memory unchanged), not on a load
#          of the same address, and the store completes once disarmed
.include "common.inc"
.option norelax
.ifndef STRICT_TVAL
.equ STRICT_TVAL, 0
.endif
.equ T_MC, (2 << 60)
.equ T_MC6, (6 << 60)
.equ LOAD, 1
.equ STORE, 2
.equ EXEC, 4
.equ U, (1 << 3)
.equ S, (1 << 4)
.equ M, (1 << 6)

# run S-mode code at \target until it executes ecall, then continue here in M
.macro RUN_S target
    la s11, 8f
    li t0, (3 << 11)
    csrc mstatus, t0
    li t0, (1 << 11)
    csrs mstatus, t0
    la t0, \target
    csrw mepc, t0
    mret
8:
.endm

.macro ARM n, data1, data2
    li t0, \n
    csrw tselect, t0
    li t0, \data2
    csrw tdata2, t0
    li t0, \data1
    csrw tdata1, t0
.endm

.macro ARM_AT n, data1, label
    li t0, \n
    csrw tselect, t0
    la t0, \label
    csrw tdata2, t0
    li t0, \data1
    csrw tdata1, t0
.endm

.macro EXPECT_TVAL label, n
.if STRICT_TVAL
    la t0, \label
    EXPECT_EQ s4, t0, \n
.endif
.endm

.globl _start
_start:
    la t0, mtrap
    csrw mtvec, t0
    PMP_OPEN
    csrr t0, tinfo
    EXPECT t0, 0x44, 1          # types 2 and 6
    li t0, 1
    csrw tselect, t0
    li t0, 2                    # only two triggers: tselect keeps 1
    csrw tselect, t0
    csrr t0, tselect
    EXPECT t0, 1, 2
    csrr t0, tdata1
    EXPECT t0, T_MC, 3
    li t0, -1                   # type 15 ("none"): ignored
    csrw tdata1, t0
    csrr t0, tdata1
    EXPECT t0, T_MC, 4
    li t0, T_MC | 0xfffff       # size 4 bytes kept; action, chain, match, hit... dropped
    csrw tdata1, t0
    csrr t0, tdata1
    EXPECT t0, T_MC | (3 << 16) | 0x5f, 5
    li t0, T_MC6 | 0xffffffff   # mcontrol6 keeps VS/VU; size 15 is unsupported: any
    csrw tdata1, t0
    csrr t0, tdata1
    EXPECT t0, T_MC6 | (3 << 23) | 0x5f, 6
    li t0, (3 << 60) | 0xffff   # icount: not in QEMU 7.2, ignored
    csrw tdata1, t0
    csrr t0, tdata1
    EXPECT t0, T_MC6 | (3 << 23) | 0x5f, 7
    li t0, -1
    csrw tdata3, t0
    csrr t0, tdata3
    EXPECT t0, 0, 8
    call disarm

    # 9-12: execute trigger in S-mode
    ARM_AT 0, T_MC | S | EXEC, exec_target
    li s2, 0
    RUN_S s_exec
    EXPECT s2, 1, 9             # one breakpoint
    EXPECT s5, 3, 10            # cause 3
    la t0, exec_target
    EXPECT_EQ s3, t0, 11        # mepc: the armed instruction
    EXPECT_TVAL exec_target, 11
    EXPECT a1, 0x11, 12         # it ran once the handler disarmed it (and not before)

    # 13: U-mode only
    ARM_AT 0, T_MC | U | EXEC, exec_target
    li s2, 0
    RUN_S s_exec
    EXPECT s2, 0, 13
    call disarm

    # 14-16: an armed instruction in the middle of a block
    ARM_AT 1, T_MC6 | S | EXEC, mid_target
    li s2, 0
    RUN_S s_mid
    EXPECT s2, 1, 14
    EXPECT s9, 2, 15            # at the trap the two before it had run ...
    EXPECT s10, 0, 16           # ... and it had not
    la t0, mid_target
    EXPECT_EQ s3, t0, 16
    call disarm

    # 17: code that already ran (and was translated) is armed afterwards
    li s2, 0
    RUN_S s_loop
    EXPECT s2, 0, 17
    ARM_AT 0, T_MC | S | EXEC, loop_body
    RUN_S s_loop
    EXPECT s2, 1, 17
    call disarm

    # 18-21: load trigger on the upper word of `data`
    ARM_AT 1, T_MC | S | LOAD, data_hi
    li s2, 0
    RUN_S s_load_lo
    EXPECT s2, 0, 18            # a load of the low word touches no watched byte
    RUN_S s_load
    EXPECT s2, 1, 19
    la t0, load_insn
    EXPECT_EQ s3, t0, 20
    EXPECT_TVAL data, 20
    EXPECT s7, 0x1122334455667788, 21   # disarmed, the load ran
    call disarm

    # 22-25: store trigger, 4 bytes at `data_hi`
    ARM_AT 0, T_MC | S | STORE | (3 << 16), data_hi
    li s2, 0
    RUN_S s_load
    EXPECT s2, 0, 22            # loads do not match a store trigger
    RUN_S s_store
    EXPECT s2, 1, 23
    EXPECT s8, 0x1122334455667788, 24   # memory as before when the trap came
    la t0, data
    lwu t1, 0(t0)
    EXPECT t1, 0x55667788, 25
    lw t1, 4(t0)
    EXPECT t1, -1, 26           # disarmed, the store ran
    call disarm
    PASS

disarm:                         # both triggers back to their reset value
    li t0, T_MC
    csrw tselect, zero
    csrw tdata1, t0
    csrw tdata2, zero
    li t1, 1
    csrw tselect, t1
    csrw tdata1, t0
    csrw tdata2, zero
    ret

# S-mode pieces (each ends with ecall)
s_exec:
    li a1, 0x10
exec_target:
    addi a1, a1, 1
    ecall

s_mid:
    li a2, 0
    li s6, 0
    addi a2, a2, 1
    addi a2, a2, 1
mid_target:
    li s6, 1
    ecall

s_loop:
    li t1, 3
loop_body:
    addi t1, t1, -1
    bnez t1, loop_body
    ecall

s_load_lo:
    la t0, data
    lw s7, 0(t0)
    ecall

s_load:
    la t0, data
    li s7, 0
load_insn:
    ld s7, 0(t0)
    ecall

s_store:
    la t0, data
    li t1, -1
    sw t1, 0(t0)                # the low word: no match
    li t2, 0x55667788           # put it back
    sw t2, 0(t0)
    sw t1, 4(t0)                # the watched word
    ecall

# M-mode trap handler: breakpoints are counted and recorded (s2 count, s3 mepc,
# s4 mtval, s5 mcause, and what s8-s10 say), both triggers disarmed, and the instruction retried; an
# ecall from S continues the M-mode program at s11.  It uses only t3-t5, which
# the S-mode pieces leave alone, so that a retried instruction sees its operands.
.align 2
mtrap:
    csrr t3, mcause
    li t4, 9
    bne t3, t4, 1f
    jr s11
1:  li t4, 3
    beq t3, t4, 2f
    li a0, (99 << 16) | 0x3333  # anything else is a failure
    j finish
2:  addi s2, s2, 1
    mv s5, t3
    csrr s3, mepc
    csrr s4, mtval
    csrr t5, tselect
    li t3, T_MC
    csrw tselect, zero
    csrw tdata1, t3
    li t4, 1
    csrw tselect, t4
    csrw tdata1, t3
    csrw tselect, t5
    mv s9, a2                   # s9, s10: registers of s_mid at the trap
    mv s10, s6
    la t3, data                 # s8: memory when a store trigger fired
    ld s8, 0(t3)
    mret

FINISH_ROUTINE

.align 3
data:
    .word 0x55667788
data_hi:
    .word 0x11223344
