/* pthreads: threads that meet at a barrier, count under a mutex, hand work through a
 * condition variable (futex wait/wake) and add with C11 atomics (LSE or LL/SC). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define THREADS 4
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t start;
static long counted;
static atomic_long atomically;
static int turn;

static void *worker(void *arg)
{
    long id = (long)arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counted += id + 1;
        pthread_mutex_unlock(&lock);
        atomic_fetch_add(&atomically, 2);
    }
    /* in id order: each waits for its turn, then wakes the others */
    pthread_mutex_lock(&lock);
    while (turn != id)
        pthread_cond_wait(&ready, &lock);
    printf("thread %ld done\n", id);
    fflush(stdout);
    turn++;
    pthread_cond_broadcast(&ready);
    pthread_mutex_unlock(&lock);
    return (void *)(id * 10);
}

int main(void)
{
    pthread_t t[THREADS];
    pthread_barrier_init(&start, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("counted %ld atomically %ld joined %ld\n", counted, (long)atomically, sum);
    return 0;
}
