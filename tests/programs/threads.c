/* pthreads, a mutex and condition variables: a bounded producer/consumer queue. */
#include <pthread.h>
#include <stdio.h>

#define N_PRODUCERS 3
#define N_ITEMS 200
#define QSIZE 8

static int queue[QSIZE], head, tail, count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static long total;
static __thread int local_counter;

static void *producer(void *arg) {
    int base = (int)(long)arg * 1000;
    for (int i = 0; i < N_ITEMS; i++) {
        pthread_mutex_lock(&lock);
        while (count == QSIZE)
            pthread_cond_wait(&not_full, &lock);
        queue[tail] = base + i;
        tail = (tail + 1) % QSIZE;
        count++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&lock);
        local_counter++;
    }
    return (void *)(long)local_counter;
}

int main(void) {
    pthread_t th[N_PRODUCERS];
    for (long i = 0; i < N_PRODUCERS; i++)
        pthread_create(&th[i], NULL, producer, (void *)i);
    for (int got = 0; got < N_PRODUCERS * N_ITEMS; got++) {
        pthread_mutex_lock(&lock);
        while (count == 0)
            pthread_cond_wait(&not_empty, &lock);
        total += queue[head];
        head = (head + 1) % QSIZE;
        count--;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&lock);
    }
    for (int i = 0; i < N_PRODUCERS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        printf("producer %d made %ld items\n", i, (long)ret);
    }
    printf("total %ld, main thread local %d\n", total, local_counter);
    return 0;
}
