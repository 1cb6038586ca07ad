/* Signals through glibc: sigaction with SA_SIGINFO, raise and kill, a blocked signal
 * left pending then delivered, SIGSEGV caught and left with siglongjmp, an alarm. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got[65];
static sigjmp_buf back;

static void handler(int sig, siginfo_t *info, void *uc)
{
    (void)uc;
    got[sig]++;
    if (sig == SIGSEGV)
        siglongjmp(back, info->si_addr == (void *)16 ? 1 : 2);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR2);
    printf("usr1 %d usr2 %d\n", got[SIGUSR1], got[SIGUSR2]);

    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGTERM);
    sigpending(&pending);
    printf("term pending %d delivered %d\n", sigismember(&pending, SIGTERM), got[SIGTERM]);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    printf("term delivered %d\n", got[SIGTERM]);

    int where = sigsetjmp(back, 1);
    if (where == 0)
        *(volatile int *)16 = 1;
    printf("segv %d at the faulting address %s\n", got[SIGSEGV], where == 1 ? "yes" : "no");

    alarm(1);
    pause();
    printf("alarm %d\n", got[SIGALRM]);
    return 0;
}
