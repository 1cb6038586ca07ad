/* fork, then parent and child take different code paths, then both run a branch of an
 * old function that neither ran before the fork.
 *
 * What it checks in an emulator that shares translated code between parent and child
 * until the child copies it: the parent translates the new paths first and chains the
 * old block in step() to them; a child that copied the code after that ran the
 * parent's chained jump into its own, different code (pemu's forked children did,
 * when the parent ran ahead: warm translation cache, loaded host). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static long rare(long i)
{
    long r = i;
    for (int k = 0; k < 5; k++)
        r = r * 31 + (r >> 7) + k;
    return r & 0xffffff;
}

/* before the fork only the first side of the branch runs */
__attribute__((noinline)) static long step(long i)
{
    if (__builtin_expect(i >= 1000, 0))
        return rare(i);
    return i + 1;
}

__attribute__((noinline)) static long parent_path(long x)
{
    long r = x;
    for (int k = 0; k < 100; k++)
        r = (r ^ (r << 3)) % 1000003 + k;
    return r;
}

__attribute__((noinline)) static long child_path(long x)
{
    long r = x;
    for (int k = 0; k < 100; k++) {
        if (r & 1)
            r = r * 3 + 1;
        else
            r = r / 2 + k;
        r %= 999983;
    }
    return r;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    long acc = 0;
    for (long i = 0; i < 5000; i++)
        acc += step(i % 1000);
    printf("before fork %ld\n", acc);
    fflush(stdout);
    for (int round = 0; round < rounds; round++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            long r = child_path(acc + round);
            r += step(1000 + r % 1000);
            printf("round %d child %ld\n", round, r);
            fflush(stdout);
            _exit(round);
        }
        long r = parent_path(acc + round);
        r += step(2000 + r % 1000);
        int status = 0;
        if (waitpid(pid, &status, 0) != pid) {
            perror("waitpid");
            return 1;
        }
        if (WIFEXITED(status))
            printf("round %d parent %ld, child exit %d\n", round, r, WEXITSTATUS(status));
        else
            printf("round %d parent %ld, child killed by signal %d\n", round, r,
                   WTERMSIG(status));
        fflush(stdout);
    }
    return 0;
}
