/* openat2 with RESOLVE_* flags, /proc/self/auxv against getauxval, an unknown syscall:
   self-checking. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

static long openat2_(int dirfd, const char *path, unsigned long flags, unsigned long resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.resolve = resolve;
    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    char path[4096], buf[64];
    snprintf(path, sizeof path, "%s/target", dir);
    long fd = openat2_(AT_FDCWD, path, O_RDONLY, 0);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    buf[n > 0 ? n : 0] = 0;
    printf("plain: %s\n", fd >= 0 ? buf : strerror(errno));
    snprintf(path, sizeof path, "%s/link", dir);
    fd = openat2_(AT_FDCWD, path, O_RDONLY, RESOLVE_NO_SYMLINKS);
    printf("no-symlinks: %s\n", fd >= 0 ? "opened" : strerror(errno));
    long dfd = open(dir, O_RDONLY | O_DIRECTORY);
    fd = openat2_(dfd, "../", O_RDONLY, RESOLVE_BENEATH);
    printf("beneath: %s\n", fd >= 0 ? "opened" : strerror(errno));
    struct open_how big[2];
    memset(big, 0, sizeof big);
    ((unsigned char *)big)[sizeof big[0]] = 1;  /* a nonzero field from the future */
    fd = syscall(SYS_openat2, dfd, "target", big, sizeof big);
    printf("future field: %s\n", fd >= 0 ? "opened" : strerror(errno));

    unsigned long pairs[2 * 64];
    int afd = open("/proc/self/auxv", O_RDONLY);
    n = afd >= 0 ? read(afd, pairs, sizeof pairs) : -1;
    int checked = 0, wrong = 0;
    for (int i = 0; n > 0 && i < n / 16 && pairs[2 * i]; i++) {
        unsigned long key = pairs[2 * i], value = pairs[2 * i + 1];
        if (key == AT_PAGESZ || key == AT_ENTRY || key == AT_PHDR || key == AT_HWCAP
            || key == AT_RANDOM || key == AT_EXECFN) {
            checked++;
            wrong += getauxval(key) != value;
        }
    }
    printf("auxv: %d checked, %d wrong\n", checked, wrong);
    long r1 = syscall(999), e1 = errno;
    long r2 = syscall(999), e2 = errno;
    printf("unknown syscall: %ld %s, %ld %s\n", r1, strerror(e1), r2, strerror(e2));
    return 0;
}
