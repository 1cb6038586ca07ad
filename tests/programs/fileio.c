/* File and directory system calls: the results must match under qemu-riscv64. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp/pemu-fileio";
    char path[512];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/data.txt", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0640);
    struct iovec iov[2] = {{"hello ", 6}, {"world\n", 6}};
    printf("writev %zd\n", writev(fd, iov, 2));
    printf("pwrite %zd\n", pwrite(fd, "HELLO", 5, 0));
    char buf[4096] = {0};  /* also holds paths under pytest's long tmp dirs */
    printf("pread %zd '%.12s'\n", pread(fd, buf, sizeof buf - 1, 0), buf);
    struct stat st;
    fstat(fd, &st);
    printf("size %lld mode %o nlink %lu\n", (long long)st.st_size, st.st_mode & 07777,
           (unsigned long)st.st_nlink);
    printf("lseek end %lld\n", (long long)lseek(fd, 0, SEEK_END));
    char *map = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("mmap sees '%.5s'\n", map);
    munmap(map, 4096);
    close(fd);

    snprintf(buf, sizeof buf, "%s/link", dir);
    unlink(buf);
    symlink("data.txt", buf);
    char target[64] = {0};
    printf("readlink %zd %s\n", readlink(buf, target, sizeof target - 1), target);
    printf("stat missing: %d errno %d\n", stat("/nonexistent/x", &st), errno);
    printf("bad pointer write: %zd errno %d\n", write(1, (void *)16, 4), errno);

    DIR *d = opendir(dir);
    int entries = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        entries++;
    closedir(d);
    printf("entries %d\n", entries);

    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        dprintf(p[1], "from child %d\n", getppid() == getppid());
        _exit(5);
    }
    close(p[1]);
    memset(buf, 0, sizeof buf);
    read(p[0], buf, sizeof buf - 1);
    int status;
    waitpid(child, &status, 0);
    printf("%sexit %d\n", buf, WEXITSTATUS(status));

    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    char *heap = malloc(1 << 20);
    memset(heap, 1, 1 << 20);
    free(heap);
    snprintf(buf, sizeof buf, "%s/renamed", dir);
    rename(path, buf);
    printf("access renamed %d\n", access(buf, R_OK));
    unlink(buf);
    snprintf(buf, sizeof buf, "%s/link", dir);
    unlink(buf);
    printf("rmdir %d\n", rmdir(dir));
    char cwd[256];
    chdir("/");
    printf("cwd %s\n", getcwd(cwd, sizeof cwd));
    return 0;
}
