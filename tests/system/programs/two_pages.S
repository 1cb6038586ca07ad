# A block whose last instruction runs onto the next page (tests/system/
# test_tb_cache_two_pages.py): an RVC kernel ends many pages so.  `bump` adds STEP
# to a0 with an addi at the page's last two bytes: its low half (opcode, rd, funct3)
# is on the first page, its immediate on the second.  Builds with another STEP (a
# --defsym) have the same first page and another second page: a block cached under
# the first page's bytes alone would add the old STEP.
.include "common.inc"
.ifndef STEP
.equ STEP, 1
.endif
.equ ROUNDS, 100

.globl _start
_start:
    li a0, 0
    li s1, ROUNDS
1:  jal ra, bump
    addi s1, s1, -1
    bnez s1, 1b
    EXPECT a0, ROUNDS * STEP, 1
    PASS

FINISH_ROUTINE

    .balign 4096
page1:
    .org page1 + 0xff0
bump:                           # one block from here, over the page end
    .option push
    .option norvc
    addi t0, zero, 1
    addi t1, zero, 2
    addi t2, zero, 3
    .option rvc
    c.nop
    .option norvc
    .org page1 + 0xffe
    addi a0, a0, STEP           # its immediate on the next page
    ret
    .option pop
