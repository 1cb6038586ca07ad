// Hand-written A64 checks whose output pemu-aarch64 and qemu-aarch64 must agree on:
// a SIGILL handler that skips the faulting udf through its ucontext (the arm64 signal
// frame and rt_sigreturn), then Advanced SIMD and scalar FP, with the V registers,
// X registers, NZCV and FPSR written to stdout.
.global _start
_start:
    // rt_sigaction(SIGILL, &act, NULL, 8)
    mov x0, #4
    adr x1, act
    mov x2, #0
    mov x3, #8
    mov x8, #134
    svc #0
    mov x19, #0x1234
    udf #7                       // the handler skips it and sets x19 through the frame
    // -- Advanced SIMD --------------------------------------------------------------
    adr x0, text
    ld1 {v0.16b}, [x0]
    cmeq v1.16b, v0.16b, #0
    shrn v2.8b, v1.8h, #4
    fmov x20, d2
    umaxp v3.16b, v1.16b, v1.16b
    uminv b4, v0.16b
    addv b5, v0.16b
    movi v6.16b, #0x5a
    dup v7.8h, w19
    orr v8.16b, v0.16b, v6.16b
    bic v9.16b, v0.16b, v6.16b
    and v10.16b, v0.16b, v7.16b
    eor v11.16b, v0.16b, v7.16b
    cmhi v12.16b, v0.16b, v6.16b
    ext v13.16b, v0.16b, v6.16b, #5
    umov w21, v0.b[3]
    ins v14.d[1], x19
    ldr q15, [x0, #16]
    sub v16.4s, v15.4s, v0.4s
    add v17.2d, v15.2d, v0.2d
    ushr v18.4s, v0.4s, #3
    cnt v19.16b, v0.16b
    xtn v20.8b, v0.8h
    // -- scalar FP ---------------------------------------------------------------------
    fmov d21, #2.5
    scvtf d22, x19
    fadd d23, d21, d22
    fmul d24, d23, d21
    fdiv d25, d24, d22
    fsqrt d26, d25
    fcvtzs x22, d26
    fcvt s27, d26
    fnmul s28, s27, s27
    fmadd d29, d21, d22, d23
    fcmp d21, d22
    mrs x23, nzcv
    fccmp d22, d22, #4, ge
    mrs x24, nzcv
    fmov d30, xzr
    fdiv d31, d21, d30           // division by zero: DZC in FPSR
    fcvtzu w25, d31
    fmax d30, d21, d22
    fminnm d29, d29, d31
    frinta d28, d25
    fcsel d27, d21, d22, lt
    mrs x26, fpsr
    // -- write everything ------------------------------------------------------------
    adr x0, out
    st1 {v0.16b, v1.16b, v2.16b, v3.16b}, [x0], #64
    st1 {v4.16b, v5.16b, v6.16b, v7.16b}, [x0], #64
    st1 {v8.16b, v9.16b, v10.16b, v11.16b}, [x0], #64
    st1 {v12.16b, v13.16b, v14.16b, v15.16b}, [x0], #64
    stp q16, q17, [x0], #32
    stp q18, q19, [x0], #32
    stp q20, q21, [x0], #32
    stp q22, q23, [x0], #32
    stp q24, q25, [x0], #32
    stp q26, q27, [x0], #32
    stp q28, q29, [x0], #32
    stp q30, q31, [x0], #32
    stp x19, x20, [x0], #16
    stp x21, x22, [x0], #16
    stp x23, x24, [x0], #16
    stp x25, x26, [x0], #16
    mov x0, #1
    adr x1, out
    mov x2, #(32 * 16 + 64)
    mov x8, #64
    svc #0
    mov x0, #0
    mov x8, #93
    svc #0

handler:                          // x0 = signo, x1 = siginfo, x2 = ucontext
    ldr x9, [x2, #(176 + 264)]    // uc_mcontext.pc
    add x9, x9, #4
    str x9, [x2, #(176 + 264)]
    ldr x10, [x1, #16]            // si_addr: the udf
    sub x10, x9, x10              // 4
    add x10, x10, x0, lsl #8      // + SIGILL << 8
    str x10, [x2, #(176 + 8 + 19 * 8)]   // x19 in the frame
    ret

.data
.balign 16
act: .quad handler, 4, 0, 0       // handler, flags (SA_SIGINFO), restorer, mask
text: .ascii "hello, simd!\0xyz0123456789abcdef"
.balign 16
out: .skip 32 * 16 + 64
