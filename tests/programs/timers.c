/* POSIX timers: signal value and code, periodic expiries, overruns while blocked,
   SIGEV_THREAD_ID, timer_gettime/settime old values, delete.  Deterministic output. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t hits, last_code, last_value, last_overrun;

static void on_timer(int sig, siginfo_t *si, void *ctx)
{
    (void)sig; (void)ctx;
    hits++;
    last_code = si->si_code;
    last_value = si->si_value.sival_int;
    last_overrun = si->si_overrun;
}

/* Wait until the handler has run n times in all.  Not "while (hits < n) pause();": a
   signal handled between the test and pause() leaves pause() waiting for one that
   never comes (the one-shot timer), a window an emulator on a loaded host widens. */
static void wait_hits(int n)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &block, &old);
    while (hits < n)
        sigsuspend(&old);
    sigprocmask(SIG_SETMASK, &old, 0);
}

static void ms(long n) { struct timespec ts = {n / 1000, (n % 1000) * 1000000}; nanosleep(&ts, 0); }

static void *thread_target(void *arg)
{
    timer_t t = *(timer_t *)arg;
    struct sigevent ev = {0};
    sigset_t set;
    siginfo_t si;
    (void)t;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN + 1);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGRTMIN + 1;
    ev._sigev_un._tid = syscall(SYS_gettid);
    ev.sigev_value.sival_int = 77;
    timer_t mine;
    if (timer_create(CLOCK_MONOTONIC, &ev, &mine)) { perror("thread timer_create"); return 0; }
    struct itimerspec its = {{0, 0}, {0, 20 * 1000000}};
    timer_settime(mine, 0, &its, 0);
    int got = sigwaitinfo(&set, &si);
    printf("thread-id timer: sig %s, code %s, value %d\n", got == SIGRTMIN + 1 ? "ok" : "wrong",
           si.si_code == SI_TIMER ? "SI_TIMER" : "other", si.si_value.sival_int);
    timer_delete(mine);
    return 0;
}

int main(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_timer;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &sa, 0);

    struct sigevent ev = {0};
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGRTMIN;
    ev.sigev_value.sival_int = 42;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t)) { perror("timer_create"); return 1; }

    struct itimerspec its = {{0, 0}, {0, 30 * 1000000}}, cur, old;
    timer_settime(t, 0, &its, 0);
    timer_gettime(t, &cur);
    printf("armed: %s\n", cur.it_value.tv_nsec > 0 && cur.it_value.tv_sec == 0 ? "yes" : "no");
    wait_hits(1);
    printf("one-shot: hits %d, code %s, value %d\n", hits, last_code == SI_TIMER ? "SI_TIMER" : "other",
           last_value);
    timer_gettime(t, &cur);
    printf("disarmed: %s\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0 ? "yes" : "no");

    /* periodic: 10 ms interval, wait for at least 3 */
    hits = 0;
    struct itimerspec per = {{0, 10 * 1000000}, {0, 10 * 1000000}};
    timer_settime(t, 0, &per, 0);
    wait_hits(3);
    timer_settime(t, 0, &(struct itimerspec){{0, 0}, {0, 0}}, &old);
    printf("periodic: at least 3, old interval %ld ms\n", old.it_interval.tv_nsec / 1000000);

    /* blocked: expiries pile up as overruns of one signal */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &set, 0);
    hits = 0;
    timer_settime(t, 0, &(struct itimerspec){{0, 200 * 1000000}, {0, 10 * 1000000}}, 0);
    ms(100);  /* the first expiry at 10 ms, then nothing until 210 ms */
    sigprocmask(SIG_UNBLOCK, &set, 0);
    timer_settime(t, 0, &(struct itimerspec){{0, 0}, {0, 0}}, 0);
    printf("blocked then unblocked: delivered %d\n", hits);
    /* a fast timer blocked: one pending signal, the rest counted as overruns */
    sigprocmask(SIG_BLOCK, &set, 0);
    hits = 0;
    timer_settime(t, 0, &per, 0);
    ms(120);
    siginfo_t si;
    struct timespec zero = {0, 0};
    int got = sigtimedwait(&set, &si, &zero);
    timer_settime(t, 0, &(struct itimerspec){{0, 0}, {0, 0}}, 0);
    sigprocmask(SIG_UNBLOCK, &set, 0);
    printf("blocked: one signal %s, overrun %s\n", got == SIGRTMIN ? "yes" : "no",
           si.si_overrun >= 3 ? ">=3" : "<3");

    printf("delete: %d, again: %d %s\n", timer_delete(t), timer_delete(t), strerror(errno));

    pthread_t th;
    sigset_t rt1;
    sigemptyset(&rt1);
    sigaddset(&rt1, SIGRTMIN + 1);
    pthread_sigmask(SIG_BLOCK, &rt1, 0);
    pthread_create(&th, 0, thread_target, &t);
    pthread_join(th, 0);
    return 0;
}
