/* Bare-metal riscv64 guest for the crash-consistency test (virt board, -bios none).
 *
 * It drives virtio-blk (virtio-mmio, polled) and writes 4 KiB blocks, one per 64 KiB
 * position of the disk, so that most writes make the qcow2 image allocate a cluster
 * (L2 and refcount updates: what a kill may tear).  Every FLUSH_EVERY writes it sends
 * VIRTIO_BLK_T_FLUSH and, once the device has completed it, prints "F run i" on the
 * UART: every write up to i of this run must survive a kill from then on.
 *
 * Sector 0 holds the run counter (each start of the guest is a new run); block i of
 * run r goes to position (r * PER_RUN + i % PER_RUN) % POSITIONS and holds the words
 * MAGIC, r, i, then pattern(r, i, k).  The test computes the same layout.
 */
#include <stdint.h>

#define UART 0x10000000UL
#define MAGIC 0x4352415348424c4bULL /* "CRASHBLK" */
#define POSITIONS 2048
#define PER_RUN 512
#define FLUSH_EVERY 8
#define QSIZE 8

/* pemu starts an ELF at its lowest address; GNU ld puts .text.unlikely.* first */
asm(".pushsection .text.unlikely.entry\n.globl _start\n_start:\n"
    "  la sp, stack_top\n  call main\n1: wfi\n  j 1b\n.popsection\n");

asm(".pushsection .bss\n.balign 16\n.space 16384\n.globl stack_top\nstack_top:\n"
    ".popsection\n");

static void uart_putc(char c) {
    volatile uint8_t *u = (volatile uint8_t *)UART;
    while (!(u[5] & 0x20)) {}
    u[0] = (uint8_t)c;
}
static void uart_puts(const char *s) { while (*s) uart_putc(*s++); }
static void uart_num(uint64_t v) {
    char b[21];
    int i = 20;
    b[i] = 0;
    do { b[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    uart_puts(b + i);
}

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct req { uint32_t type, reserved; uint64_t sector; };
static struct desc descs[QSIZE] __attribute__((aligned(16)));
static volatile struct { uint16_t flags, idx, ring[QSIZE], event; } avail
    __attribute__((aligned(2)));
static volatile struct { uint16_t flags, idx; struct { uint32_t id, len; } ring[QSIZE];
                         uint16_t event; } used __attribute__((aligned(4)));
static struct req req;
static volatile uint8_t status;
static uint64_t buf[512];
static uintptr_t dev;
static uint16_t seen_used;

#define REG(off) (*(volatile uint32_t *)(dev + (off)))
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4

static void fail(const char *why) {
    uart_puts("E ");
    uart_puts(why);
    uart_putc('\n');
    for (;;) {}
}

static void request(uint32_t type, uint64_t sector) {
    int n = 0;
    req.type = type;
    req.reserved = 0;
    req.sector = sector;
    status = 0xff;
    descs[n++] = (struct desc){(uintptr_t)&req, sizeof req, 1, 1};
    if (type != T_FLUSH)
        descs[n++] = (struct desc){(uintptr_t)buf, sizeof buf,
                                   (uint16_t)(1 | (type == T_IN ? 2 : 0)), 2};
    descs[n - 1].next = (uint16_t)n;
    descs[n] = (struct desc){(uintptr_t)&status, 1, 2, 0};
    avail.ring[avail.idx % QSIZE] = 0;
    __sync_synchronize();
    avail.idx = (uint16_t)(avail.idx + 1);
    __sync_synchronize();
    REG(0x50) = 0;
    while (used.idx == seen_used) {}
    seen_used++;
    __sync_synchronize();
    if (status != 0)
        fail("request failed");
}

static void find_and_init(void) {
    for (uintptr_t a = 0x10001000; a <= 0x10008000; a += 0x1000) {
        dev = a;
        if (REG(0) == 0x74726976 && REG(4) == 2 && REG(8) == 2)
            break;
        dev = 0;
    }
    if (!dev)
        fail("no virtio-blk");
    REG(0x70) = 0;
    REG(0x70) = 1;
    REG(0x70) = 3;
    REG(0x14) = 0;
    if (!(REG(0x10) & (1u << 9)))
        fail("no flush feature");
    REG(0x24) = 1;
    REG(0x20) = 1;            /* VERSION_1 */
    REG(0x24) = 0;
    REG(0x20) = 1u << 9;      /* VIRTIO_BLK_F_FLUSH */
    REG(0x70) = 11;
    if (!(REG(0x70) & 8))
        fail("features");
    REG(0x30) = 0;
    REG(0x38) = QSIZE;
    REG(0x80) = (uint32_t)(uintptr_t)descs;
    REG(0x84) = 0;
    REG(0x90) = (uint32_t)(uintptr_t)&avail;
    REG(0x94) = 0;
    REG(0xa0) = (uint32_t)(uintptr_t)&used;
    REG(0xa4) = 0;
    REG(0x44) = 1;
    REG(0x70) = 15;
}

static uint64_t pattern(uint64_t run, uint64_t i, uint64_t k) {
    return (run << 40) ^ (i << 12) ^ k ^ 0x9e3779b97f4a7c15ULL;
}

int main(void) {
    find_and_init();
    request(T_IN, 0);
    uint64_t run = buf[0] == MAGIC ? buf[1] + 1 : 1;
    buf[0] = MAGIC;
    buf[1] = run;
    request(T_OUT, 0);
    request(T_FLUSH, 0);
    uart_puts("R ");
    uart_num(run);
    uart_putc('\n');
    for (uint64_t i = 1;; i++) {
        uint64_t pos = (run * PER_RUN + i % PER_RUN) % POSITIONS;
        buf[0] = MAGIC;
        buf[1] = run;
        buf[2] = i;
        for (uint64_t k = 3; k < 512; k++)
            buf[k] = pattern(run, i, k);
        request(T_OUT, 128 + pos * 128);     /* 64 KiB apart, after sector 0's cluster */
        if (i % FLUSH_EVERY == 0) {
            request(T_FLUSH, 0);
            uart_puts("F ");
            uart_num(run);
            uart_putc(' ');
            uart_num(i);
            uart_putc('\n');
        }
    }
}
