/* vfork and posix_spawn followed by execve (or not): what the child changes before the
 * exec (descriptors, mask, dispositions) reaches the new program and not the parent;
 * the child shares the parent's memory until then; its own pid; an exec that fails
 * (the child goes on; posix_spawn returns the errno); a child that never execs; exit
 * statuses seen by wait.  The output is the same on every architecture: the host
 * kernel's native build is the oracle (qemu-riscv64 turns vfork into fork). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static const char *self;

/* the exec'd side: report what it was started with */
static int child_main(const char *mode, char **argv) {
    if (!strcmp(mode, "pid")) {
        printf("%d\n", (int)getpid());
        return 0;
    }
    if (!strcmp(mode, "state")) {
        sigset_t mask;
        sigprocmask(SIG_BLOCK, NULL, &mask);
        struct sigaction sa;
        sigaction(SIGINT, NULL, &sa);
        int int_ign = sa.sa_handler == SIG_IGN;
        sigaction(SIGUSR2, NULL, &sa);
        int usr2_ign = sa.sa_handler == SIG_IGN;
        printf("%s: usr1 blocked %d, term blocked %d, int ignored %d, usr2 ignored %d, "
               "fd 5 open %d, fd 6 open %d, ppid matches %d\n",
               argv[2], sigismember(&mask, SIGUSR1), sigismember(&mask, SIGTERM), int_ign,
               usr2_ign, fcntl(5, F_GETFD) >= 0, fcntl(6, F_GETFD) >= 0,
               getppid() == atoi(argv[3]));
        return 0;
    }
    if (!strcmp(mode, "status"))
        return atoi(argv[2]);
    return 99;
}

static int wait_status(pid_t pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

static void run_state(const char *tag, char *parent_pid) {
    char *argv[] = {(char *)self, "state", (char *)tag, parent_pid, NULL};
    execve(self, argv, environ);
}

int main(int argc, char **argv) {
    self = argv[0];
    if (argc > 1)
        return child_main(argv[1], argv);
    setvbuf(stdout, NULL, _IONBF, 0);
    char parent_pid[16];
    snprintf(parent_pid, sizeof parent_pid, "%d", (int)getpid());
    signal(SIGUSR2, SIG_IGN);

    /* 1. vfork, the child's stdout a pipe (dup2, close), exec: the new program's pid is
     * the one vfork returned; the parent's stdout and pipe ends are its own */
    int p[2];
    pipe(p);
    pid_t pid = vfork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[1]);
        close(p[0]);
        char *cargv[] = {(char *)self, "pid", NULL};
        execve(self, cargv, environ);
        _exit(127);
    }
    close(p[1]);
    char buf[64] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    printf("vfork+dup2: read %d, pid matches %d, status %d, parent stdout open %d\n",
           n > 0, n > 0 && atoi(buf) == pid, wait_status(pid), fcntl(1, F_GETFD) >= 0);

    /* 2. what the vfork child changes reaches the program, not the parent: mask,
     * dispositions (SIGINT ignored, SIGUSR2 back to default), descriptors */
    int fd5 = dup2(0, 5), fd6 = dup2(0, 6);
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, NULL);
    pid = vfork();
    if (pid == 0) {
        sigset_t more;
        sigemptyset(&more);
        sigaddset(&more, SIGUSR1);
        sigprocmask(SIG_BLOCK, &more, NULL);
        signal(SIGUSR2, SIG_DFL);
        close(6);
        dup3(5, 7, O_CLOEXEC);
        run_state("vfork child", parent_pid);
        _exit(127);
    }
    printf("state: status %d\n", wait_status(pid));
    pid = vfork();
    if (pid == 0) {
        signal(SIGINT, SIG_IGN);
        run_state("vfork child with SIGINT ignored", parent_pid);
        _exit(127);
    }
    printf("state: status %d\n", wait_status(pid));
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    struct sigaction sa;
    sigaction(SIGINT, NULL, &sa);
    int int_ign = sa.sa_handler == SIG_IGN;
    sigaction(SIGUSR2, NULL, &sa);
    printf("parent after: usr1 blocked %d, term blocked %d, int ignored %d, usr2 ignored "
           "%d, fd 6 open %d, fd 7 open %d\n", sigismember(&now, SIGUSR1),
           sigismember(&now, SIGTERM), int_ign, sa.sa_handler == SIG_IGN,
           fcntl(fd6, F_GETFD) >= 0, fcntl(7, F_GETFD) >= 0);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    close(fd5);
    close(fd6);

    /* 3. an exec that fails: the child sees ENOENT and goes on; a child that never execs
     * writes the parent's memory (vfork shares it) and its status reaches wait */
    static volatile int seen_errno, shared_value;
    pid = vfork();
    if (pid == 0) {
        char *cargv[] = {"missing", NULL};
        execve("/nonexistent/program", cargv, environ);
        seen_errno = errno;
        _exit(42);
    }
    printf("failed exec: child saw %s, status %d\n", seen_errno == ENOENT ? "ENOENT" : "?",
           wait_status(pid));
    pid = vfork();
    if (pid == 0) {
        shared_value = 1234;
        _exit(3);
    }
    printf("no exec: shared value %d, status %d\n", shared_value, wait_status(pid));
    pipe(p);
    pid = vfork();
    if (pid == 0) {
        pid_t own = getpid(); /* its own pid, before any exec */
        write(p[1], &own, sizeof own);
        _exit(4);
    }
    pid_t own = 0;
    read(p[0], &own, sizeof own);
    close(p[0]);
    close(p[1]);
    printf("own pid: matches %d, status %d\n", own == pid, wait_status(pid));

    /* 4. posix_spawn: file actions, a mask, default dispositions, exit status; and the
     * errno of a program that is missing */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, 0, 5);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t spawn_mask, spawn_def;
    sigemptyset(&spawn_mask);
    sigaddset(&spawn_mask, SIGUSR1);
    sigemptyset(&spawn_def);
    sigaddset(&spawn_def, SIGUSR2);
    posix_spawnattr_setsigmask(&attr, &spawn_mask);
    posix_spawnattr_setsigdefault(&attr, &spawn_def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *sargv[] = {(char *)self, "state", "posix_spawn", parent_pid, NULL};
    int r = posix_spawn(&pid, self, &fa, &attr, sargv, environ);
    printf("posix_spawn: %d, status %d\n", r, r == 0 ? wait_status(pid) : -1);
    char *xargv[] = {(char *)self, "status", "5", NULL};
    r = posix_spawn(&pid, self, NULL, NULL, xargv, environ);
    printf("posix_spawn status: %d, status %d\n", r, r == 0 ? wait_status(pid) : -1);
    char *margv[] = {"missing", NULL};
    r = posix_spawn(&pid, "/nonexistent/program", NULL, NULL, margv, environ);
    printf("posix_spawn missing: %s\n", r == ENOENT ? "ENOENT" : r == 0 ? "0" : "other");
    r = posix_spawnp(&pid, "no-such-program-anywhere", NULL, NULL, margv, environ);
    printf("posix_spawnp missing: %s\n", r == ENOENT ? "ENOENT" : r == 0 ? "0" : "other");
    return 0;
}
