/* clone3: a thread on its own stack, a fork with a pidfd, the kernel's argument
 * checks, and posix_spawn; execveat relative to a directory and of a descriptor.  The output is the same on any kernel and emulator that
 * implement clone3 (the native build on the host kernel is the oracle). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static volatile int thread_value;
static char thread_stack[64 * 1024] __attribute__((aligned(16)));

static int thread_body(void *arg) {
    thread_value = (int)(intptr_t)arg;
    return 0;
}

/* clone3 whose child runs fn(arg) on the new stack and then exit()s the thread */
static long clone3_run(struct clone_args *args, size_t size, int (*fn)(void *), void *arg) {
#if defined(__riscv)
    register long a0 __asm__("a0") = (long)args;
    register long a1 __asm__("a1") = (long)size;
    register long a2 __asm__("a2") = (long)fn;
    register long a3 __asm__("a3") = (long)arg;
    register long a7 __asm__("a7") = SYS_clone3;
    __asm__ volatile("ecall\n"
                     "bnez a0, 1f\n"
                     "mv a0, a3\n"
                     "jalr a2\n"
                     "li a7, 93\n" /* exit */
                     "ecall\n"
                     "1:\n"
                     : "+r"(a0)
                     : "r"(a1), "r"(a2), "r"(a3), "r"(a7)
                     : "memory", "ra");
    return a0;
#elif defined(__x86_64__)
    long ret;
    register long r12 __asm__("r12") = (long)fn;
    register long r13 __asm__("r13") = (long)arg;
    __asm__ volatile("syscall\n"
                     "test %%rax, %%rax\n"
                     "jnz 1f\n"
                     "mov %%r13, %%rdi\n"
                     "call *%%r12\n"
                     "mov $60, %%eax\n" /* exit */
                     "xor %%edi, %%edi\n"
                     "syscall\n"
                     "1:\n"
                     : "=a"(ret)
                     : "a"((long)SYS_clone3), "D"(args), "S"(size), "r"(r12), "r"(r13)
                     : "rcx", "r11", "memory");
    return ret;
#elif defined(__aarch64__)
    register long x0 __asm__("x0") = (long)args;
    register long x1 __asm__("x1") = (long)size;
    register long x2 __asm__("x2") = (long)fn;
    register long x3 __asm__("x3") = (long)arg;
    register long x8 __asm__("x8") = SYS_clone3;
    __asm__ volatile("svc #0\n"
                     "cbnz x0, 1f\n"
                     "mov x0, x3\n"
                     "blr x2\n"
                     "mov x8, #93\n" /* exit */
                     "svc #0\n"
                     "1:\n"
                     : "+r"(x0)
                     : "r"(x1), "r"(x2), "r"(x3), "r"(x8)
                     : "memory", "x30");
    return x0;
#else
#error "clone3_run: no implementation for this architecture"
#endif
}

static void thread_check(void) {
    static atomic_int child_tid = -1;
    static int parent_tid;
    struct clone_args args = {0};
    args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
                 CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;
    args.stack = (uintptr_t)thread_stack;
    args.stack_size = sizeof thread_stack;
    args.child_tid = (uintptr_t)&child_tid;
    args.parent_tid = (uintptr_t)&parent_tid;
    atomic_store(&child_tid, 1); /* CLEARTID zeroes it when the thread is gone */
    long tid = clone3_run(&args, sizeof args, thread_body, (void *)42);
    if (tid < 0) {
        printf("thread: clone3 failed: %s\n", strerror((int)-tid));
        return;
    }
    int seen;
    while ((seen = atomic_load(&child_tid)) != 0)
        syscall(SYS_futex, &child_tid, FUTEX_WAIT, seen, NULL, NULL, 0);
    printf("thread: parent_tid matches %d, other tid %d, value %d\n", parent_tid == tid,
           tid != gettid(), thread_value);
}

static void fork_pidfd_check(void) {
    int pidfd = -1;
    struct clone_args args = {0};
    args.flags = CLONE_PIDFD;
    args.pidfd = (uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        _exit(7);
    if (pid < 0) {
        printf("fork: clone3 failed: %s\n", strerror(errno));
        return;
    }
    siginfo_t info = {0};
    int r = waitid(P_PIDFD, pidfd, &info, WEXITED);
    printf("fork: pidfd %d, cloexec %d, waitid %d, pid matches %d, status %d\n", pidfd >= 0,
           (fcntl(pidfd, F_GETFD) & FD_CLOEXEC) != 0, r, info.si_pid == pid, info.si_status);
    close(pidfd);
}

static const char *result(long r) {
    static char buf[64];
    if (r == 0) {
        _exit(0); /* a child made by a request that should have been refused */
    }
    if (r > 0) {
        waitpid((pid_t)r, NULL, 0);
        return "created";
    }
    snprintf(buf, sizeof buf, "%s", strerrorname_np(errno));
    return buf;
}

static void argument_checks(void) {
    unsigned char big[128] = {0};
    struct clone_args *args = (struct clone_args *)big;
    args->exit_signal = SIGCHLD;
    printf("checks: size 32: %s\n", result(syscall(SYS_clone3, args, 32)));
    printf("checks: size 4097: %s\n", result(syscall(SYS_clone3, args, 4097)));
    printf("checks: size 96, zero tail: %s\n", result(syscall(SYS_clone3, args, 96)));
    printf("checks: size 64: %s\n", result(syscall(SYS_clone3, args, 64)));
    big[100] = 1;
    printf("checks: size 128, used tail: %s\n", result(syscall(SYS_clone3, args, 128)));
    big[100] = 0;
    printf("checks: bad pointer: %s\n", result(syscall(SYS_clone3, (void *)8, 64)));
    struct clone_args a = {0};
    a.exit_signal = 0x100;
    printf("checks: exit_signal 256: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.exit_signal = SIGCHLD;
    a.stack = (uintptr_t)thread_stack;
    printf("checks: stack without size: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.stack = 0;
    a.flags = CLONE_THREAD | CLONE_VM | CLONE_SIGHAND;
    printf("checks: thread with exit_signal: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.flags = SIGCHLD;
    printf("checks: CSIGNAL in flags: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.flags = 0x400000; /* CLONE_DETACHED */
    printf("checks: CLONE_DETACHED: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.flags = CLONE_SIGHAND | CLONE_CLEAR_SIGHAND | CLONE_VM;
    printf("checks: SIGHAND and CLEAR_SIGHAND: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.flags = 1ULL << 40;
    printf("checks: unknown flag: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.flags = 0;
    a.set_tid_size = 1;
    printf("checks: set_tid_size without set_tid: %s\n",
           result(syscall(SYS_clone3, &a, sizeof a)));
    a.set_tid_size = 33;
    printf("checks: set_tid_size 33: %s\n", result(syscall(SYS_clone3, &a, sizeof a)));
    a.set_tid_size = 0;
    int parent = 0;
    printf("checks: clone PIDFD with PARENT_SETTID: %s\n",
           result(syscall(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, 0, &parent,
                          0, 0)));
}

static int caught;
static void on_usr1(int sig) { caught = sig; }

static void clear_sighand_check(void) {
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, SIG_IGN);
    struct clone_args a = {0};
    a.flags = CLONE_CLEAR_SIGHAND;
    a.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &a, sizeof a);
    if (pid == 0) {
        struct sigaction usr1, usr2;
        sigaction(SIGUSR1, NULL, &usr1);
        sigaction(SIGUSR2, NULL, &usr2);
        _exit((usr1.sa_handler == SIG_DFL) | (usr2.sa_handler == SIG_IGN) << 1);
    }
    int status = 0;
    waitpid((pid_t)pid, &status, 0);
    printf("clear_sighand: child saw default %d, ignored kept %d\n",
           WEXITSTATUS(status) & 1, WEXITSTATUS(status) >> 1);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
}

static void spawn_check(const char *self) {
    pid_t pid;
    char *argv[] = {(char *)self, "spawned", NULL};
    extern char **environ;
    int r = posix_spawn(&pid, self, NULL, NULL, argv, environ);
    int status = 0;
    if (r == 0)
        waitpid(pid, &status, 0);
    printf("posix_spawn: %d, exit status %d\n", r, WEXITSTATUS(status));
}

static int run_execveat(int dirfd, const char *path, int flags, const char *tag) {
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"clone3_exec", (char *)tag, NULL};
        extern char **environ;
        syscall(SYS_execveat, dirfd, path, argv, environ, flags);
        _exit(100 + errno);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WEXITSTATUS(status);
}

static void execveat_check(const char *self) {
    char dir[4096];
    strncpy(dir, self, sizeof dir - 1);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : self;
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int selffd = open(self, O_RDONLY | O_CLOEXEC);
    printf("execveat: relative %d\n", run_execveat(dirfd, base, 0, "relative"));
    printf("execveat: AT_EMPTY_PATH %d\n", run_execveat(selffd, "", AT_EMPTY_PATH, "fd"));
    printf("execveat: empty path without the flag %d\n", run_execveat(selffd, "", 0, "x") - 100);
    printf("execveat: unknown flag %d\n", run_execveat(dirfd, base, 0x4, "x") - 100);
    printf("execveat: missing %d\n", run_execveat(dirfd, "no-such-program", 0, "x") - 100);
    close(dirfd);
    close(selffd);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        printf("%s child running\n", argv[1]);
        return 3;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    thread_check();
    fork_pidfd_check();
    argument_checks();
    clear_sighand_check();
    spawn_check(argv[0]);
    execveat_check(argv[0]);
    return 0;
}
