/* vsock-echo PORT MESSAGE: connect to the host (CID 2) on AF_VSOCK port PORT, send
 * MESSAGE, half-close, and copy whatever comes back to stdout.  The Debian guest
 * has no program that speaks AF_VSOCK as a client, so test_vsock.py builds this one
 * (no libc: a few hundred bytes to type into the guest's console) at test time. */

#define SYS_read 63
#define SYS_write 64
#define SYS_exit 93
#define SYS_socket 198
#define SYS_connect 203
#define SYS_shutdown 210
#define AF_VSOCK 40
#define SOCK_STREAM 1
#define SHUT_WR 1
#define VMADDR_CID_HOST 2

struct sockaddr_vm {
    unsigned short family, reserved1;
    unsigned int port, cid;
    unsigned char flags, zero[3];
};

static long sys(long n, long a, long b, long c) {
    register long a7 asm("a7") = n, a0 asm("a0") = a, a1 asm("a1") = b, a2 asm("a2") = c;
    asm volatile("ecall" : "+r"(a0) : "r"(a7), "r"(a1), "r"(a2) : "memory");
    return a0;
}

static long len(const char *s) {
    long n = 0;
    while (s[n])
        n++;
    return n;
}

static void fail(const char *why) {
    sys(SYS_write, 2, (long)why, len(why));
    sys(SYS_exit, 1, 0, 0);
}

void start_c(long *sp) {
    char **argv = (char **)(sp + 1);
    char buf[512];
    struct sockaddr_vm addr = {AF_VSOCK, 0, 0, VMADDR_CID_HOST, 0, {0}};
    long fd, n;
    if (sp[0] != 3)
        fail("usage: vsock-echo PORT MESSAGE\n");
    for (const char *p = argv[1]; *p; p++)
        addr.port = addr.port * 10 + (unsigned)(*p - '0');
    fd = sys(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
    if (fd < 0)
        fail("vsock-echo: socket failed\n");
    if (sys(SYS_connect, fd, (long)&addr, sizeof addr) < 0)
        fail("vsock-echo: connect failed\n");
    if (sys(SYS_write, fd, (long)argv[2], len(argv[2])) != len(argv[2]))
        fail("vsock-echo: write failed\n");
    sys(SYS_shutdown, fd, SHUT_WR, 0);
    while ((n = sys(SYS_read, fd, (long)buf, sizeof buf)) > 0)
        sys(SYS_write, 1, (long)buf, n);
    sys(SYS_exit, n < 0, 0, 0);
}

asm(".globl _start\n_start:\n  mv a0, sp\n  andi sp, sp, -16\n  call start_c\n");
