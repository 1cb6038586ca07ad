/* signalfd: blocked signals read from a descriptor (the guest's mask, queue order,
   sigqueue values, mask updates, dup, poll/epoll readiness, blocking reads woken by
   another process, SIGCHLD) and the errors.  Deterministic output. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *code_name(int code)
{
    switch (code) {
    case SI_USER: return "SI_USER";
    case SI_QUEUE: return "SI_QUEUE";
    case SI_TKILL: return "SI_TKILL";
    case CLD_EXITED: return "CLD_EXITED";
    default: return "other";
    }
}

static int readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void show(const char *what, const struct signalfd_siginfo *si)
{
    printf("%s: sig %u, code %s, pid ok %d, value %d\n", what, si->ssi_signo,
           code_name(si->ssi_code), si->ssi_pid == (unsigned)getpid(), si->ssi_int);
}

int main(void)
{
    sigset_t block, mask;
    struct signalfd_siginfo si[4];
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGRTMIN + 2);
    sigprocmask(SIG_BLOCK, &block, 0);
    setvbuf(stdout, 0, _IONBF, 0);

    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    printf("created: %d, cloexec %d\n", fd >= 0, (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    ssize_t n = read(fd, si, sizeof si);
    printf("empty read: %zd %s, readable %d\n", n, n < 0 ? strerror(errno) : "", readable(fd));

    raise(SIGUSR1);
    printf("after raise: readable %d\n", readable(fd));
    n = read(fd, si, sizeof si);
    printf("read %zd bytes\n", n);
    show("raise", &si[0]);
    printf("drained: readable %d\n", readable(fd));

    union sigval v = {.sival_int = 42};
    sigqueue(getpid(), SIGUSR1, v);
    n = read(fd, si, sizeof si);
    show("sigqueue", &si[0]);

    /* not in the mask: the signalfd does not see it (until the mask takes it in) */
    kill(getpid(), SIGUSR2);
    printf("other signal: readable %d\n", readable(fd));
    sigaddset(&mask, SIGUSR2);
    sigaddset(&mask, SIGRTMIN + 2);
    printf("update returns same fd: %d\n", signalfd(fd, &mask, 0) == fd);
    printf("after update: readable %d\n", readable(fd));
    kill(getpid(), SIGUSR1);
    sigqueue(getpid(), SIGRTMIN + 2, (union sigval){.sival_int = 1});
    sigqueue(getpid(), SIGRTMIN + 2, (union sigval){.sival_int = 2});
    n = read(fd, si, sizeof si);
    printf("batch read: %zd records\n", n / (ssize_t)sizeof si[0]);
    for (int i = 0; i < n / (ssize_t)sizeof si[0]; i++)
        show("  batch", &si[i]);

    /* through a dup'd descriptor, and readiness in epoll */
    int dupfd = dup(fd);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, dupfd, &ev);
    printf("epoll before: %d\n", epoll_wait(ep, &out, 1, 0));
    close(fd);
    raise(SIGUSR2);
    int got = epoll_wait(ep, &out, 1, 1000);
    printf("epoll after: %d data %u\n", got, out.data.u32);
    n = read(dupfd, si, sizeof si[0]);
    show("dup", &si[0]);

    /* a blocking read, woken by a signal another process sends */
    fcntl(dupfd, F_SETFL, fcntl(dupfd, F_GETFL) & ~O_NONBLOCK);
    pid_t child = fork();
    if (child == 0) {
        usleep(200000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    n = read(dupfd, si, sizeof si[0]);
    printf("blocking read: %zd, sig %u, code %s\n", n, si[0].ssi_signo,
           code_name(si[0].ssi_code));
    waitpid(child, 0, 0);

    /* SIGCHLD through its own signalfd */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int cfd = signalfd(-1, &chld, 0);
    /* the first child's SIGCHLD, pending (blocked) since its exit: read before the
       second child exists, so the two never coalesce into one, whatever the timing */
    n = read(cfd, si, sizeof si[0]);
    child = fork();
    if (child == 0)
        _exit(3);
    int status;
    waitpid(child, &status, 0);
    printf("sigchld: %zd, sig %u, child exit %d\n", n, si[0].ssi_signo, WEXITSTATUS(status));

    /* the second child's SIGCHLD: blocked, so still pending for sigtimedwait */
    struct timespec zero = {0, 0};
    errno = 0;
    printf("left for sigtimedwait: %d %s\n", sigtimedwait(&block, 0, &zero), strerror(errno));

    /* errors */
    errno = 0;
    printf("short read: %zd %s\n", read(cfd, si, 10), strerror(errno));
    errno = 0;
    printf("not a signalfd: %d %s\n", signalfd(0, &mask, 0), strerror(errno));
    errno = 0;
    printf("bad flags: %ld %s\n", syscall(SYS_signalfd4, -1, &mask, 8, 1), strerror(errno));
    return 0;
}
