/* RVV state across a signal handler that uses the vector unit itself (pemu's V signal
 * context, Linux's __riscv_v_ext_state), plus AT_HWCAP's V bit and a vector memcpy.
 * The vector instructions are inline assembly: gcc 12 has no RVV intrinsics. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <ucontext.h>

#define V_ON ".option push\n.option arch, +v\n"
#define V_OFF "\n.option pop"
#define RISCV_V_MAGIC 0x53465457u

static volatile uint32_t seen_magic;
static volatile unsigned long seen_vl;

static void handler(int sig, siginfo_t *info, void *ctx) {
    ucontext_t *uc = ctx;
    /* the first extension header: the last 8 bytes of the FP union */
    const uint32_t *hdr = (const uint32_t *)((const char *)&uc->uc_mcontext + 256 + 520);
    seen_magic = hdr[0];
    seen_vl = ((const unsigned long *)(hdr + 2))[1]; /* __riscv_v_ext_state.vl */
    /* clobber what the interrupted code holds */
    __asm__ volatile(V_ON "vsetivli zero, 16, e8, m1, ta, ma\nvmv.v.i v1, -1\ncsrwi vxrm, 3"
                     V_OFF);
}

static void vector_copy(void *dst, const void *src, size_t n) {
    while (n) {
        size_t vl;
        __asm__ volatile(V_ON "vsetvli %0, %3, e8, m8, ta, ma\nvle8.v v8, (%1)\nvse8.v v8, (%2)"
                         V_OFF : "=&r"(vl) : "r"(src), "r"(dst), "r"(n) : "memory");
        src = (const char *)src + vl;
        dst = (char *)dst + vl;
        n -= vl;
    }
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    unsigned long vl, vxrm, elem;
    __asm__ volatile(V_ON "vsetivli zero, 3, e32, m1, tu, mu\nvmv.v.i v1, 5\ncsrwi vxrm, 1" V_OFF);
    raise(SIGUSR1);
    __asm__ volatile(V_ON "csrr %0, vl\ncsrr %1, vxrm\nvmv.x.s %2, v1" V_OFF
                     : "=r"(vl), "=r"(vxrm), "=r"(elem));
    char src[300], dst[300];
    for (int i = 0; i < 300; i++)
        src[i] = (char)(i * 7);
    memset(dst, 0, sizeof dst);
    vector_copy(dst, src, sizeof src);
    printf("hwcap_v=%d magic=%d handler_vl=%lu vl=%lu vxrm=%lu v1=%lu copy=%d\n",
           (getauxval(AT_HWCAP) >> ('V' - 'A')) & 1, seen_magic == RISCV_V_MAGIC, seen_vl,
           vl, vxrm, elem, memcmp(src, dst, sizeof src) == 0);
    return 0;
}
