/*
 * Oracle for pemu's soft-float tests: runs real RISC-V F/D instructions.
 *
 * Reads lines "op rm a b c" (op a name, the rest hex) from stdin and prints
 * "result fflags" in hex for each.  The rounding mode goes into frm and the
 * instructions use the dynamic mode, so every rm the ISA defines is exercised.
 * Single-precision operands are moved in with fmv.w.x (which NaN-boxes them)
 * and results are masked to their width.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t u64;
typedef u64 (*op_fn)(u64 a, u64 b, u64 c);

#define FBIN(fn, mv, mvx, insn) \
    static u64 fn(u64 a, u64 b, u64 c) { (void)c; u64 r; \
        __asm__ volatile(mv " ft0, %1\n\t" mv " ft1, %2\n\t" insn " ft2, ft0, ft1\n\t" mvx " %0, ft2" \
            : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1", "ft2"); return r; }
#define FUN(fn, mv, mvx, insn) \
    static u64 fn(u64 a, u64 b, u64 c) { (void)b; (void)c; u64 r; \
        __asm__ volatile(mv " ft0, %1\n\t" insn " ft2, ft0\n\t" mvx " %0, ft2" \
            : "=r"(r) : "r"(a) : "ft0", "ft2"); return r; }
#define FTER(fn, mv, mvx, insn) \
    static u64 fn(u64 a, u64 b, u64 c) { u64 r; \
        __asm__ volatile(mv " ft0, %1\n\t" mv " ft1, %2\n\t" mv " ft2, %3\n\t" \
            insn " ft3, ft0, ft1, ft2\n\t" mvx " %0, ft3" \
            : "=r"(r) : "r"(a), "r"(b), "r"(c) : "ft0", "ft1", "ft2", "ft3"); return r; }
/* float -> integer register (compare, classify, fcvt to int) */
#define FTOX2(fn, mv, insn) \
    static u64 fn(u64 a, u64 b, u64 c) { (void)c; u64 r; \
        __asm__ volatile(mv " ft0, %1\n\t" mv " ft1, %2\n\t" insn " %0, ft0, ft1" \
            : "=r"(r) : "r"(a), "r"(b) : "ft0", "ft1"); return r; }
#define FTOX1(fn, mv, insn) \
    static u64 fn(u64 a, u64 b, u64 c) { (void)b; (void)c; u64 r; \
        __asm__ volatile(mv " ft0, %1\n\t" insn " %0, ft0" : "=r"(r) : "r"(a) : "ft0"); return r; }
/* integer register -> float */
#define XTOF(fn, mvx, insn) \
    static u64 fn(u64 a, u64 b, u64 c) { (void)b; (void)c; u64 r; \
        __asm__ volatile(insn " ft0, %1\n\t" mvx " %0, ft0" : "=r"(r) : "r"(a) : "ft0"); return r; }

#define BOTH(P, S, D) \
    FBIN(P##_add, S, D, "fadd." #P) FBIN(P##_sub, S, D, "fsub." #P) FBIN(P##_mul, S, D, "fmul." #P) \
    FBIN(P##_div, S, D, "fdiv." #P) FUN(P##_sqrt, S, D, "fsqrt." #P) \
    FBIN(P##_min, S, D, "fmin." #P) FBIN(P##_max, S, D, "fmax." #P) \
    FTER(P##_fmadd, S, D, "fmadd." #P) FTER(P##_fmsub, S, D, "fmsub." #P) \
    FTER(P##_fnmsub, S, D, "fnmsub." #P) FTER(P##_fnmadd, S, D, "fnmadd." #P) \
    FTOX2(P##_eq, S, "feq." #P) FTOX2(P##_lt, S, "flt." #P) FTOX2(P##_le, S, "fle." #P) \
    FTOX1(P##_classify, S, "fclass." #P) \
    FTOX1(P##_to_i32, S, "fcvt.w." #P) FTOX1(P##_to_u32, S, "fcvt.wu." #P) \
    FTOX1(P##_to_i64, S, "fcvt.l." #P) FTOX1(P##_to_u64, S, "fcvt.lu." #P) \
    XTOF(P##_from_i32, D, "fcvt." #P ".w") XTOF(P##_from_u32, D, "fcvt." #P ".wu") \
    XTOF(P##_from_i64, D, "fcvt." #P ".l") XTOF(P##_from_u64, D, "fcvt." #P ".lu")

BOTH(s, "fmv.w.x", "fmv.x.w")
BOTH(d, "fmv.d.x", "fmv.x.d")
FUN(s_to_d, "fmv.w.x", "fmv.x.d", "fcvt.d.s")
FUN(d_to_s, "fmv.d.x", "fmv.x.w", "fcvt.s.d")

struct op { const char *name; op_fn fn; int result_bits; };
#define ENTRIES(P, W) \
    {"f" #W "_add", P##_add, W}, {"f" #W "_sub", P##_sub, W}, {"f" #W "_mul", P##_mul, W}, \
    {"f" #W "_div", P##_div, W}, {"f" #W "_sqrt", P##_sqrt, W}, \
    {"f" #W "_min", P##_min, W}, {"f" #W "_max", P##_max, W}, \
    {"f" #W "_fmadd", P##_fmadd, W}, {"f" #W "_fmsub", P##_fmsub, W}, \
    {"f" #W "_fnmsub", P##_fnmsub, W}, {"f" #W "_fnmadd", P##_fnmadd, W}, \
    {"f" #W "_eq", P##_eq, 64}, {"f" #W "_lt", P##_lt, 64}, {"f" #W "_le", P##_le, 64}, \
    {"f" #W "_classify", P##_classify, 64}, \
    {"f" #W "_to_i32", P##_to_i32, 32}, {"f" #W "_to_u32", P##_to_u32, 32}, \
    {"f" #W "_to_i64", P##_to_i64, 64}, {"f" #W "_to_u64", P##_to_u64, 64}, \
    {"f" #W "_from_i32", P##_from_i32, W}, {"f" #W "_from_u32", P##_from_u32, W}, \
    {"f" #W "_from_i64", P##_from_i64, W}, {"f" #W "_from_u64", P##_from_u64, W}

static const struct op ops[] = {
    ENTRIES(s, 32), ENTRIES(d, 64),
    {"f32_to_f64", s_to_d, 64}, {"f64_to_f32", d_to_s, 32},
};

int main(void)
{
    char line[256], name[64];
    unsigned rm;
    u64 a, b, c;
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    while (fgets(line, sizeof line, stdin)) {
        if (sscanf(line, "%63s %x %lx %lx %lx", name, &rm, &a, &b, &c) != 5) {
            fprintf(stderr, "bad line: %s", line);
            return 2;
        }
        const struct op *op = NULL;
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (!strcmp(ops[i].name, name)) { op = &ops[i]; break; }
        if (!op) { fprintf(stderr, "unknown op: %s\n", name); return 2; }
        unsigned flags;
        __asm__ volatile("csrw frm, %0\n\tcsrw fflags, zero" : : "r"(rm));
        u64 r = op->fn(a, b, c);
        __asm__ volatile("csrr %0, fflags" : "=r"(flags));
        if (op->result_bits == 32) r &= 0xffffffffu;
        printf("%lx %x\n", r, flags);
    }
    return 0;
}
