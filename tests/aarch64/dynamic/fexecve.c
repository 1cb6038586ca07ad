/* fexecve of this program through a close-on-exec descriptor, as dropbear re-executes
 * itself for each connection: glibc falls back to execve("/proc/self/fd/N"). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "again") == 0) {
        printf("ran again as %s\n", argv[0]);
        return 7;
    }
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror("open /proc/self/exe");
        return 1;
    }
    if (fd != 3)
        dup3(fd, 3, O_CLOEXEC), close(fd), fd = 3;
    char *args[] = {"fexecve-child", "again", NULL};
    fexecve(fd, args, environ);
    perror("fexecve");
    return 1;
}
