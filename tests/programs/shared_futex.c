/* Futexes shared between processes through MAP_SHARED memory: a process-shared
 * semaphore, mutex and condition variable, and a robust mutex whose owner process
 * exits holding it (EOWNERDEAD in the other process); a signal handler interrupts a
 * wait on a shared futex, and a timed one times out. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct shared {
    sem_t sem;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_mutex_t robust;
    long counter;
    int turn;
};

static struct shared *sh;

static void init(void) {
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sem_init(&sh->sem, 1, 0);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&sh->lock, &ma);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&sh->robust, &ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_cond_init(&sh->cond, &ca);
}

static void semaphore(void) {
    pid_t pid = fork();
    if (pid == 0) {
        usleep(100000);
        sem_post(&sh->sem);
        _exit(0);
    }
    sem_wait(&sh->sem); /* blocks until the child posts */
    waitpid(pid, NULL, 0);
    printf("semaphore: posted by the child\n");
}

static void mutex_and_condition(void) {
    pid_t pid = fork();
    int me = pid == 0;
    for (int round = 0; round < 20; round++) {
        pthread_mutex_lock(&sh->lock);
        while (sh->turn != me)
            pthread_cond_wait(&sh->cond, &sh->lock);
        sh->counter += me ? 1 : 100;
        sh->turn = !me;
        pthread_cond_broadcast(&sh->cond);
        pthread_mutex_unlock(&sh->lock);
    }
    if (me)
        _exit(0);
    waitpid(pid, NULL, 0);
    printf("mutex and condition: counter %ld\n", sh->counter);
}

static void robust_owner_exits(void) {
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(&sh->robust);
        sem_post(&sh->sem);
        usleep(100000); /* the parent is waiting for the lock by now (most likely) */
        _exit(0);       /* still holding it */
    }
    sem_wait(&sh->sem);
    int r = pthread_mutex_lock(&sh->robust);
    printf("robust: lock after the owner process exited: %s\n",
           r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(&sh->robust);
    pthread_mutex_unlock(&sh->robust);
    waitpid(pid, NULL, 0);
}

static volatile int handled;
static void on_usr1(int sig) { handled = sig; }

static void *interrupted_waiter(void *arg) {
    (void)arg;
    int r = sem_wait(&sh->sem);
    printf("signal: sem_wait %d %s, handler ran %d\n", r, r ? strerrorname_np(errno) : "",
           handled == SIGUSR1);
    return NULL;
}

static void interrupted(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1; /* no SA_RESTART, and sem_wait is never restarted anyway */
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t th;
    pthread_create(&th, NULL, interrupted_waiter, NULL);
    usleep(100000);
    pthread_kill(th, SIGUSR1);
    pthread_join(th, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    int r = sem_timedwait(&sh->sem, &ts);
    printf("timeout: sem_timedwait %d %s\n", r, r ? strerrorname_np(errno) : "");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    init();
    semaphore();
    mutex_and_condition();
    robust_owner_exits();
    interrupted();
    return 0;
}
