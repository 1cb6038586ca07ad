/* The tagged address ABI on riscv64 (Linux 6.13+, pointer masking / Supm):
 * prctl(PR_SET_TAGGED_ADDR_CTRL / PR_GET_TAGGED_ADDR_CTRL), loads, stores and atomics
 * through tagged pointers, system calls given tagged pointers, a thread inheriting
 * the masking.  Prints one line per check; the test compares them with Linux's rules.
 *
 *   tagged_pointers probe   what PR_GET_TAGGED_ADDR_CTRL says (EINVAL without Supm)
 *   tagged_pointers abi     the whole sequence (needs Supm)
 *   tagged_pointers segv    dereferences a tagged pointer without asking: SIGSEGV
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PR_SET_TAGGED_ADDR_CTRL
#define PR_SET_TAGGED_ADDR_CTRL 55
#define PR_GET_TAGGED_ADDR_CTRL 56
#define PR_TAGGED_ADDR_ENABLE (1UL << 0)
#endif
#ifndef PR_PMLEN_SHIFT
#define PR_PMLEN_SHIFT 24
#endif

static long set_ctrl(unsigned long arg, unsigned long arg3)
{
    long r = prctl(PR_SET_TAGGED_ADDR_CTRL, arg, arg3, 0, 0);
    return r < 0 ? -errno : r;
}

static long get_ctrl(void)
{
    long r = prctl(PR_GET_TAGGED_ADDR_CTRL, 0, 0, 0, 0);
    return r < 0 ? -errno : r;
}

static void *tag(void *p, unsigned long bits)
{
    return (void *)((uintptr_t)p | bits);
}

/* vle64.v through a pointer (the vector unit masks each element's address too) */
static long vector_load(volatile long *p)
{
    long out;
    __asm__ volatile(".option push\n.option arch, +v\n"
                     "vsetivli zero, 1, e64, m1, ta, ma\n"
                     "vle64.v v1, (%1)\n"
                     "vmv.x.s %0, v1\n"
                     ".option pop\n" : "=r"(out) : "r"(p) : "memory");
    return out;
}

static volatile long cell[4] = {0x1122334455667788L, 0, 0, 0};

static void *thread_body(void *arg)
{
    volatile long *p = arg;  /* a tagged pointer: masked in this thread too */
    return (void *)(p[0] == 0x77 ? 1L : 2L);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "abi";
    if (!strcmp(mode, "probe")) {
        printf("get %ld\n", get_ctrl());
        printf("set %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE | 7UL << PR_PMLEN_SHIFT, 0));
        return 0;
    }
    if (!strcmp(mode, "segv")) {
        volatile long *p = tag((void *)cell, 0xABUL << 56);
        printf("about to fault\n");
        fflush(stdout);
        return (int)p[0];
    }
    printf("initial %#lx\n", get_ctrl());
    /* requests Linux refuses */
    printf("pmlen17 %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE | 17UL << PR_PMLEN_SHIFT, 0));
    printf("enable-pmlen0 %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE, 0));
    printf("bad-bits %ld\n", set_ctrl(2, 0));
    printf("arg3 %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE | 7UL << PR_PMLEN_SHIFT, 1));
    /* masking without the syscall ABI: loads are masked, system calls are not */
    printf("mask-only %ld\n", set_ctrl(16UL << PR_PMLEN_SHIFT, 0));
    printf("get %#lx\n", get_ctrl());
    volatile long *p16 = tag((void *)cell, 0xBEEFUL << 48);
    printf("load %#lx\n", (unsigned long)p16[0]);
    static char msg[] = "tagged write\n";
    char *tmsg = tag(msg, 0x5AUL << 56);
    long w = write(1, tmsg, sizeof msg - 1);
    printf("write-without-abi %ld\n", w < 0 ? -errno : w);
    /* PMLEN 5 is rounded up to 7 */
    printf("pmlen5 %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE | 5UL << PR_PMLEN_SHIFT, 0));
    printf("get %#lx\n", get_ctrl());
    volatile long *p7 = tag((void *)cell, 0x7FUL << 57);
    p7[1] = 0x1234;
    printf("store %#lx\n", (unsigned long)cell[1]);
    fflush(stdout);
    w = write(1, tmsg, sizeof msg - 1);  /* bits 63:57 only: untagged by the kernel */
    printf("write %ld\n", w < 0 ? -errno : w);
    /* PMLEN 8 becomes 16 */
    printf("pmlen8 %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE | 8UL << PR_PMLEN_SHIFT, 0));
    printf("get %#lx\n", get_ctrl());
    __atomic_store_n(&p16[0], 0x70L, __ATOMIC_SEQ_CST);
    long old = __atomic_fetch_add(&p16[0], 7L, __ATOMIC_SEQ_CST);
    printf("amo %#lx %#lx\n", (unsigned long)old, (unsigned long)cell[0]);
    printf("vector %#lx\n", (unsigned long)vector_load(p16));
    long expected = 0;
    int swapped = __atomic_compare_exchange_n(&p16[2], &expected, 5L, 0, __ATOMIC_SEQ_CST,
                                              __ATOMIC_SEQ_CST);
    printf("cas %d %ld\n", swapped, (long)cell[2]);
    char *page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mprotect %d\n", mprotect(tag(page, 0x4242UL << 48), 4096, PROT_READ));
    printf("munmap %d\n", munmap(tag(page, 0x4242UL << 48), 4096));
    /* a thread inherits the masking; afterwards the ABI's PMLEN is locked */
    pthread_t th;
    void *result;
    pthread_create(&th, 0, thread_body, (void *)p16);
    pthread_join(th, &result);
    printf("thread %ld\n", (long)result);
    printf("relock %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE | 7UL << PR_PMLEN_SHIFT, 0));
    printf("same %ld\n", set_ctrl(PR_TAGGED_ADDR_ENABLE | 16UL << PR_PMLEN_SHIFT, 0));
    return 0;
}
