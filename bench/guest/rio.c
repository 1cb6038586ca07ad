/* rio: random 4 KiB reads or writes on a block device, for bench/bench_storage.py.
 *
 *     rio DEVICE r|w COUNT BLOCKS    -> prints the nanoseconds COUNT I/Os took
 *
 * Busybox has no random-I/O tool and a dd per I/O would time process start-up, so
 * the guest gets this: one process, O_DIRECT (no page cache), offsets from a
 * xorshift generator over the first BLOCKS 4 KiB blocks, one I/O at a time (queue
 * depth 1).  No libc: raw Linux syscalls (riscv64 numbers), so the binary is a few
 * KiB and can be typed into the guest's shell as base64.  Exit status: 2 usage,
 * 3 open failed, 4 short or failed I/O. */

typedef unsigned long u64;

enum { SYS_OPENAT = 56, SYS_PREAD64 = 67, SYS_PWRITE64 = 68, SYS_WRITE = 64,
       SYS_FSYNC = 82, SYS_EXIT = 93, SYS_CLOCK_GETTIME = 113 };
enum { AT_FDCWD = -100, O_RDWR = 2, O_DIRECT = 040000, CLOCK_MONOTONIC = 1, BLOCK = 4096 };

static long sys4(long n, long a, long b, long c, long d)
{
    register long a7 __asm__("a7") = n;
    register long a0 __asm__("a0") = a;
    register long a1 __asm__("a1") = b;
    register long a2 __asm__("a2") = c;
    register long a3 __asm__("a3") = d;
    __asm__ volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2), "r"(a3) : "memory");
    return a0;
}

static char buf[BLOCK] __attribute__((aligned(BLOCK)));  /* O_DIRECT wants alignment */

static u64 number(const char *s)
{
    u64 v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (u64)(*s++ - '0');
    return v;
}

static void print(u64 v)
{
    char text[24];
    int i = 23;
    text[i] = '\n';
    do {
        text[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sys4(SYS_WRITE, 1, (long)(text + i), 24 - i, 0);
}

static u64 now_ns(void)
{
    long ts[2];
    sys4(SYS_CLOCK_GETTIME, CLOCK_MONOTONIC, (long)ts, 0, 0);
    return (u64)ts[0] * 1000000000UL + (u64)ts[1];
}

void rio_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    if (argc < 5)
        sys4(SYS_EXIT, 2, 0, 0, 0);
    int writing = argv[2][0] == 'w';
    u64 count = number(argv[3]), blocks = number(argv[4]);
    long fd = sys4(SYS_OPENAT, AT_FDCWD, (long)argv[1], O_RDWR | O_DIRECT, 0);
    if (fd < 0 || blocks == 0)
        sys4(SYS_EXIT, 3, 0, 0, 0);
    for (int i = 0; i < BLOCK; i++)
        buf[i] = (char)(i * 7);
    u64 x = 0x9E3779B97F4A7C15UL, start = now_ns();
    for (u64 i = 0; i < count; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        long offset = (long)((x % blocks) * BLOCK);
        if (sys4(writing ? SYS_PWRITE64 : SYS_PREAD64, fd, (long)buf, BLOCK, offset) != BLOCK)
            sys4(SYS_EXIT, 4, 0, 0, 0);
    }
    if (writing)
        sys4(SYS_FSYNC, fd, 0, 0, 0);
    print(now_ns() - start);
    sys4(SYS_EXIT, 0, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n\tmv a0, sp\n\tcall rio_main\n");
