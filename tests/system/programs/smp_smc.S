# Cross-hart self-modifying code (run with -smp 2; MTTCG: each hart on its own host
# thread).  Hart 0 rewrites a routine ROUNDS times, `addi a0, x0, r; ret`, runs
# fence.i and publishes r; hart 1 keeps calling the routine all along (its old block
# may be dropped while it runs it), and once it sees r published it runs its own
# fence.i and must get r from the call, then acknowledges r.
#   check 1  hart 1 got another value than the published round after its fence.i
#   check 2  a call returned something neither the current nor the next round
.include "common.inc"
.ifndef ROUNDS
.equ ROUNDS, 200
.endif
.equ ADDI_A0, 0x00000513        # addi a0, x0, imm (imm in bits 31:20)
.equ RET, 0x00008067            # jalr x0, 0(ra)

.globl _start
_start:
    la s1, code
    la s2, published            # 0: published round, 8: acknowledged round
    csrr t0, mhartid
    beqz t0, writer
    li t1, 1
    beq t0, t1, runner
park:
    wfi
    j park

writer:
    li s3, 1
1:  slli t1, s3, 20
    li t2, ADDI_A0
    or t1, t1, t2
    sw t1, 0(s1)
    li t1, RET
    sw t1, 4(s1)
    fence.i
    fence w, w
    sd s3, 0(s2)                # publish round s3
2:  ld t1, 8(s2)
    bne t1, s3, 2b              # until hart 1 acknowledges it
    addi s3, s3, 1
    li t1, ROUNDS
    bleu s3, t1, 1b
    PASS

runner:
    li s3, 0                    # the last round acknowledged
1:  ld t1, 0(s2)
    bne t1, s3, 2f
    beqz s3, 1b                 # nothing written yet: do not call it
    jalr ra, 0(s1)              # the routine while it may be rewritten
    beq a0, s3, 1b
    addi t2, s3, 1
    beq a0, t2, 1b
    li a0, (2 << 16) | 0x3333
    j finish
2:  mv s3, t1
    fence.i
    jalr ra, 0(s1)
    EXPECT_EQ a0, s3, 1
    sd s3, 8(s2)
    j 1b

FINISH_ROUTINE

.data
.align 3
published:
    .dword 0, 0
.align 12
code:
    .word 0, 0
