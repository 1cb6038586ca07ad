// Two processes (fork) share a page (MAP_SHARED | MAP_ANONYMOUS) and each adds to its
// counters N times, each counter with another kind of atomic: LDADDAL (8 bytes), an
// LDAXR/STLXR loop (4), LDADDH (2), LDADDB (1), a CASAL loop (8), an LDAXP/STLXP loop
// on a pair (2 x 8) and a CASPAL loop on a pair (2 x 8).  The parent waits for the child
// (wait4), then writes the page's first 64 bytes to stdout.  Atomics must be atomic
// across processes, not only across one process's threads: every total is exact.
.equ N, 4000
.global _start
_start:
    mov x0, #0
    mov x1, #4096
    mov x2, #3                       // PROT_READ | PROT_WRITE
    mov x3, #0x21                    // MAP_SHARED | MAP_ANONYMOUS
    mov x4, #-1
    mov x5, #0
    mov x8, #222                     // mmap
    svc #0
    mov x19, x0
    mov x0, #17                      // SIGCHLD: a plain fork
    mov x1, #0
    mov x2, #0
    mov x3, #0
    mov x4, #0
    mov x8, #220                     // clone
    svc #0
    mov x20, x0                      // 0 in the child
    bl add_n
    cbz x20, child_exit
    mov x0, #-1
    mov x1, #0
    mov x2, #0                       // (the status is not needed)
    mov x3, #0
    mov x8, #260                     // wait4
    svc #0
    mov x0, #1
    mov x1, x19
    mov x2, #64
    mov x8, #64                      // write
    svc #0
    mov x0, #0
    mov x8, #94                      // exit_group
    svc #0
child_exit:
    mov x0, #0
    mov x8, #94
    svc #0

add_n:
    movz x10, #(N & 0xffff)
    mov x14, #1
    mov x15, #2
1:  ldaddal x14, x11, [x19]          // +0: LSE add
    add x9, x19, #8                  // +8: exclusives, 4 bytes
2:  ldaxr w11, [x9]
    add w11, w11, #1
    stlxr w12, w11, [x9]
    cbnz w12, 2b
    add x9, x19, #12                 // +12: LSE add, 2 bytes
    ldaddh w14, w11, [x9]
    add x9, x19, #14                 // +14: LSE add, 1 byte (wraps)
    ldaddb w14, w11, [x9]
    add x9, x19, #16                 // +16: CAS loop
    ldr x11, [x9]
3:  add x12, x11, #1
    mov x13, x11
    casal x13, x12, [x9]
    cmp x13, x11
    mov x11, x13
    b.ne 3b
    add x9, x19, #32                 // +32: exclusive pair, +1 and +2
4:  ldaxp x11, x12, [x9]
    add x11, x11, #1
    add x12, x12, #2
    stlxp w13, x11, x12, [x9]
    cbnz w13, 4b
    add x9, x19, #48                 // +48: CASP loop, +1 and +2
    ldp x2, x3, [x9]
5:  add x4, x2, #1
    add x5, x3, #2
    mov x6, x2
    mov x7, x3
    caspal x6, x7, x4, x5, [x9]
    cmp x6, x2
    ccmp x7, x3, #0, eq
    mov x2, x6
    mov x3, x7
    b.ne 5b
    subs x10, x10, #1
    b.ne 1b
    ret
