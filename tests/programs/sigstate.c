/* The signal state a program starts with: which signals are blocked and which are
   ignored (inherited from its caller across execve, and through binfmt_misc). */
#include <signal.h>
#include <stdio.h>

int main(void)
{
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, 0, &blocked);
    printf("blocked:");
    for (int sig = 1; sig < 65; sig++)
        if (sigismember(&blocked, sig) == 1)
            printf(" %d", sig);
    printf("\nignored:");
    for (int sig = 1; sig < 65; sig++) {
        struct sigaction old;
        if (sigaction(sig, 0, &old) == 0 && old.sa_handler == SIG_IGN)
            printf(" %d", sig);
    }
    printf("\n");
    return 0;
}
