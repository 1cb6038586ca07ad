// Two guest threads (clone) each add 1 to a shared counter N times with an
// LDXR/STXR loop; the main thread waits for the other through CLONE_CHILD_CLEARTID
// and a futex, then writes the counter (8 bytes) to stdout.  Exclusives must be
// atomic across threads that really run at once: the total is exactly 2 * N.
.equ N, 20000
.global _start
_start:
    movz x0, #0x0f00
    movk x0, #0x3d, lsl #16          // VM FS FILES SIGHAND THREAD SYSVSEM SETTID CLEARTID
    adr x1, stack_top
    adr x2, ptid
    mov x3, #0
    adr x4, ctid
    mov x8, #220                     // clone
    svc #0
    cbz x0, worker
    bl add_n
wait:
    adr x0, ctid
    ldr w2, [x0]
    cbz w2, done
    mov x1, #0                       // FUTEX_WAIT
    mov x3, #0
    mov x8, #98
    svc #0
    b wait
done:
    mov x0, #1
    adr x1, counter
    mov x2, #8
    mov x8, #64
    svc #0
    mov x0, #0
    mov x8, #94                      // exit_group
    svc #0

worker:
    bl add_n
    mov x0, #0
    mov x8, #93                      // exit: this thread only
    svc #0

add_n:
    adr x9, counter
    movz x10, #(N & 0xffff)
    movk x10, #(N >> 16), lsl #16
1:  ldaxr x11, [x9]
    add x11, x11, #1
    stlxr w12, x11, [x9]
    cbnz w12, 1b
    subs x10, x10, #1
    b.ne 1b
    ret

.data
.balign 16
counter: .quad 0
ptid: .word 0
ctid: .word 1
.balign 16
stack: .skip 8192
stack_top:
