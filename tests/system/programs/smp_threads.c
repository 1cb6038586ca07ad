/* Threads of one process on every vCPU of an SMP Linux guest (tests/system/test_mttcg.py):
 * each thread is pinned to a CPU of its own (so they really run at the same time, one
 * per vCPU, which with MTTCG means one per host thread), then
 *   - adds 1 to a shared counter ITERS times with an AMO (__atomic_fetch_add: amoadd),
 *   - adds 1 to another ITERS times with a compare-and-swap loop (lr/sc),
 *   - adds 1 to a plain counter ITERS / 8 times under a pthread mutex (futex waits
 *     and wakes when contended),
 *   - passes a token round a ring of all threads ROUNDS times, each waiting for its
 *     turn on a condition variable (futex wait/wake across CPUs every step),
 * and checks every total exactly.  A lost update anywhere (an atomic that is not, a
 * futex wake that is lost, a missing fence) makes a total wrong or hangs the ring.
 * Prints "SMP-THREADS OK ..." and exits 0, or "SMP-THREADS FAIL ..." and exits 1.
 * Build: riscv64-linux-gnu-gcc -static -O2 -pthread -o smp-threads smp_threads.c
 * Usage: smp-threads THREADS ITERS ROUNDS */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

static long n_threads, iters, rounds;
static unsigned long amo_counter, cas_counter, locked_counter;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_turn = PTHREAD_COND_INITIALIZER;
static long ring_holder, ring_passes;
static pthread_barrier_t start_line;
static int cpu_of[64];

static void *worker(void *arg)
{
    long me = (long)arg;
    pthread_barrier_wait(&start_line);
    cpu_of[me] = sched_getcpu();
    for (long i = 0; i < iters; i++)
        __atomic_fetch_add(&amo_counter, 1, __ATOMIC_RELAXED);
    for (long i = 0; i < iters; i++) {
        unsigned long old = __atomic_load_n(&cas_counter, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&cas_counter, &old, old + 1, 1,
                                            __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            ;
    }
    for (long i = 0; i < iters / 8; i++) {
        pthread_mutex_lock(&counter_lock);
        locked_counter++;  /* not atomic: only the mutex keeps it exact */
        pthread_mutex_unlock(&counter_lock);
    }
    for (long r = 0; r < rounds; r++) {
        pthread_mutex_lock(&ring_lock);
        while (ring_holder != me)
            pthread_cond_wait(&ring_turn, &ring_lock);
        ring_passes++;
        ring_holder = (me + 1) % n_threads;
        pthread_cond_broadcast(&ring_turn);
        pthread_mutex_unlock(&ring_lock);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s THREADS ITERS ROUNDS\n", argv[0]);
        return 2;
    }
    n_threads = atol(argv[1]);
    iters = atol(argv[2]);
    rounds = atol(argv[3]);
    if (n_threads < 1 || n_threads > 64) {
        fprintf(stderr, "THREADS: 1 to 64\n");
        return 2;
    }
    pthread_t threads[64];
    pthread_barrier_init(&start_line, NULL, n_threads);
    long n_cpus = 0;
    cpu_set_t online;
    if (sched_getaffinity(0, sizeof(online), &online) == 0)
        n_cpus = CPU_COUNT(&online);
    for (long t = 0; t < n_threads; t++) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (n_cpus > 0) {  /* one CPU each, round the online ones */
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(t % n_cpus, &one);
            pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
        }
        if (pthread_create(&threads[t], &attr, worker, (void *)t) != 0) {
            printf("SMP-THREADS FAIL pthread_create\n");
            return 1;
        }
        pthread_attr_destroy(&attr);
    }
    for (long t = 0; t < n_threads; t++)
        pthread_join(threads[t], NULL);
    unsigned long want = (unsigned long)(n_threads * iters);
    unsigned long want_locked = (unsigned long)(n_threads * (iters / 8));
    unsigned long want_ring = (unsigned long)(n_threads * rounds);
    unsigned long cpus_seen = 0;
    for (long t = 0; t < n_threads; t++)
        if (cpu_of[t] >= 0 && cpu_of[t] < 64)
            cpus_seen |= 1UL << cpu_of[t];
    int ok = amo_counter == want && cas_counter == want && locked_counter == want_locked
             && ring_passes == want_ring;
    printf("SMP-THREADS %s amo=%lu cas=%lu mutex=%lu ring=%lu want=%lu/%lu/%lu cpus=%d\n",
           ok ? "OK" : "FAIL", amo_counter, cas_counter, locked_counter, ring_passes,
           want, want_locked, want_ring, __builtin_popcountl(cpus_seen));
    return ok ? 0 : 1;
}
