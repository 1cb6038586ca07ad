/* Bare-metal riscv64 test program: count in RAM at 0x80100000, every 100 loops
   store the loop count at 0x80100008 (a watchpoint target). Linked at 0x80000000. */
.globl _start
_start:
  li t1, 0x80100000
  li t2, 0
loop:
  ld t0, 0(t1)
  addi t0, t0, 1
  sd t0, 0(t1)
  addi t2, t2, 1
  li t3, 100
  bne t2, t3, loop
  sd t2, 8(t1)
  j loop
