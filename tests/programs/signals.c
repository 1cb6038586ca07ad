/* Signal handling: handlers with siginfo, sigaltstack, masks, raise, and recovery
 * from SIGSEGV with siglongjmp. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sigjmp_buf recover;
static volatile sig_atomic_t usr1_count;
static char altstack[65536];
static volatile int on_alt;

static void on_segv(int sig, siginfo_t *info, void *uc) {
    (void)uc;
    char here;
    on_alt = &here >= altstack && &here < altstack + sizeof altstack;
    printf("caught signal %d code %d at %#lx\n", sig, info->si_code,
           (unsigned long)(uintptr_t)info->si_addr);
    siglongjmp(recover, 1);
}

static void on_usr1(int sig) {
    usr1_count++;
    printf("usr1 handler: sig %d, count %d\n", sig, (int)usr1_count);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) { perror("sigaltstack"); return 1; }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);

    for (int round = 0; round < 2; round++) {
        if (sigsetjmp(recover, 1) == 0) {
            volatile int *bad = (int *)(uintptr_t)(0x1000 + round * 8);
            *bad = 42;
            puts("not reached");
        } else {
            printf("recovered round %d, handler on altstack: %d\n", round, on_alt);
        }
    }

    struct sigaction su;
    memset(&su, 0, sizeof su);
    su.sa_handler = on_usr1;
    sigaction(SIGUSR1, &su, NULL);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);

    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    printf("blocked: count still %d\n", (int)usr1_count);
    sigset_t pend;
    sigpending(&pend);
    printf("pending USR1: %d\n", sigismember(&pend, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: count %d\n", (int)usr1_count);

    signal(SIGUSR2, SIG_IGN);
    raise(SIGUSR2);
    puts("ignored SIGUSR2");

    alarm(1);
    signal(SIGALRM, SIG_DFL);
    alarm(0);
    return 7;
}
