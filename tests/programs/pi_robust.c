/* Priority-inheritance and robust mutexes, FUTEX_WAKE_OP and the requeue-PI pair.
 *
 * Each check prints what it saw, so that pemu's output can be compared with
 * qemu-riscv64's (and a native build's, on the host kernel). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t pi_lock, robust_lock, robust_pi_lock;
static long counter;
static pthread_barrier_t barrier;

static void init_mutex(pthread_mutex_t *m, int protocol, int robust) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setprotocol(&a, protocol);
    pthread_mutexattr_setrobust(&a, robust);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
}

static void *pi_worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&pi_lock);
        long c = counter;
        if (i % 64 == 0)
            sched_yield(); /* hold it a while: the others end up in FUTEX_LOCK_PI */
        counter = c + 1;
        pthread_mutex_unlock(&pi_lock);
    }
    return NULL;
}

/* takes the lock and exits holding it */
static void *die_holding(void *arg) {
    pthread_mutex_t *m = arg;
    pthread_mutex_lock(m);
    pthread_barrier_wait(&barrier);
    usleep(20000); /* the main thread is blocked on m by now (most likely) */
    return NULL;
}

static void owner_dies(const char *what, pthread_mutex_t *m) {
    pthread_t th;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&th, NULL, die_holding, m);
    pthread_barrier_wait(&barrier);
    int r = pthread_mutex_lock(m); /* blocks until the owner is gone */
    printf("%s: lock after owner died: %s\n", what, r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    if (r == EOWNERDEAD) {
        printf("%s: consistent: %d\n", what, pthread_mutex_consistent(m));
        printf("%s: unlock: %d\n", what, pthread_mutex_unlock(m));
        printf("%s: relock: %d\n", what, pthread_mutex_lock(m));
        pthread_mutex_unlock(m);
    }
    pthread_join(th, NULL);
    pthread_barrier_destroy(&barrier);
    /* a lock whose owner died while nobody waited: main's trylock notices it */
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&th, NULL, die_holding, m);
    pthread_barrier_wait(&barrier);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&barrier);
}

static long futex(atomic_uint *uaddr, int op, unsigned val, unsigned long val2,
                  atomic_uint *uaddr2, unsigned val3) {
    return syscall(SYS_futex, uaddr, op, val, val2, uaddr2, val3);
}

static atomic_uint w1, w2, started;

static void *wake_op_waiter(void *arg) {
    atomic_uint *w = arg;
    atomic_fetch_add(&started, 1);
    while (atomic_load(w) == 0)
        futex(w, FUTEX_WAIT_PRIVATE, 0, 0, NULL, 0);
    return NULL;
}

static void wake_op(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, wake_op_waiter, &w1);
    pthread_create(&b, NULL, wake_op_waiter, &w2);
    while (atomic_load(&started) < 2)
        sched_yield();
    usleep(20000);
    atomic_store(&w1, 1);
    /* w2 += 5, and wake it if its old value was 0 */
    long n = futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, &w2,
                   FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_EQ, 0));
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("wake_op: returned >=1 %d, w2 %u\n", n >= 1, atomic_load(&w2));
    /* OPARG_SHIFT: w2 |= 1 << 4, comparison fails: nobody on w2 woken */
    n = futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, &w2,
              FUTEX_OP(FUTEX_OP_OR | FUTEX_OP_OPARG_SHIFT, 4, FUTEX_OP_CMP_LT, 0));
    printf("wake_op: shift %ld, w2 %u\n", n, atomic_load(&w2));
    n = futex(&w1, FUTEX_WAKE_OP_PRIVATE, 1, 1, &w2, 7u << 28);
    printf("wake_op: bad op %s\n", n < 0 ? strerror(errno) : "accepted");
}

static void raw_pi(void) {
    static atomic_uint word;
    unsigned tid = syscall(SYS_gettid);
    long r = futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, 0, NULL, 0);
    printf("raw pi: lock free %ld, owner is me %d\n", r, atomic_load(&word) == tid);
    r = futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, 0, NULL, 0);
    printf("raw pi: relock %s\n", r < 0 ? strerror(errno) : "ok");
    r = futex(&word, FUTEX_TRYLOCK_PI_PRIVATE, 0, 0, NULL, 0);
    printf("raw pi: trylock own %s\n", r < 0 ? strerror(errno) : "ok");
    r = futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, 0, NULL, 0);
    printf("raw pi: unlock %ld, word %u\n", r, atomic_load(&word));
    r = futex(&word, FUTEX_UNLOCK_PI_PRIVATE, 0, 0, NULL, 0);
    printf("raw pi: unlock unowned %s\n", r < 0 ? strerror(errno) : "ok");
    atomic_store(&word, 0x3ffffff0); /* an owner that does not exist */
    r = futex(&word, FUTEX_LOCK_PI_PRIVATE, 0, 0, NULL, 0);
    printf("raw pi: dead owner %s\n", r < 0 ? strerror(errno) : "ok");
    r = futex(&word, FUTEX_TRYLOCK_PI_PRIVATE, 0, 0, NULL, 0);
    printf("raw pi: trylock taken %s\n", r < 0 ? strerror(errno) : "ok");
}

static atomic_uint cond_word, pi_word, owners;
static long requeued_counter;

static void *requeue_waiter(void *arg) {
    (void)arg;
    long r;
    do
        r = futex(&cond_word, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 0, 0, &pi_word, 0);
    while (r < 0 && errno == EAGAIN);
    unsigned tid = syscall(SYS_gettid);
    if (r == 0 && (atomic_load(&pi_word) & FUTEX_TID_MASK) == tid)
        atomic_fetch_add(&owners, 1);
    requeued_counter++; /* under pi_word */
    unsigned expected = tid;
    if (!atomic_compare_exchange_strong(&pi_word, &expected, 0))
        futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, 0, NULL, 0);
    return NULL;
}

static void requeue_pi(void) {
    pthread_t th[3];
    atomic_store(&pi_word, syscall(SYS_gettid)); /* main owns the PI lock */
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, requeue_waiter, NULL);
    long moved = 0;
    while (moved < 3) {
        long n = futex(&cond_word, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, 0x7fffffff, &pi_word, 0);
        if (n > 0)
            moved += n;
        else
            usleep(1000);
    }
    printf("requeue_pi: moved %ld, waiters bit %d\n", moved,
           (atomic_load(&pi_word) & FUTEX_WAITERS) != 0);
    long r = futex(&pi_word, FUTEX_UNLOCK_PI_PRIVATE, 0, 0, NULL, 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    printf("requeue_pi: unlock %ld, owners %u, counter %ld, word %u\n", r,
           atomic_load(&owners), requeued_counter, atomic_load(&pi_word));
    r = futex(&cond_word, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, 1, &cond_word, 0);
    printf("requeue_pi: same word %s\n", r < 0 ? strerror(errno) : "ok");
    r = futex(&cond_word, FUTEX_CMP_REQUEUE_PI_PRIVATE, 2, 1, &pi_word, 0);
    printf("requeue_pi: nr_wake 2 %s\n", r < 0 ? strerror(errno) : "ok");
    r = futex(&cond_word, FUTEX_CMP_REQUEUE_PI_PRIVATE, 1, 1, &pi_word, 5);
    printf("requeue_pi: value changed %s\n", r < 0 ? strerror(errno) : "ok");
    r = futex(&cond_word, FUTEX_WAIT_REQUEUE_PI_PRIVATE, 1, 0, &pi_word, 0);
    printf("requeue_pi: wait on a changed value %s\n", r < 0 ? strerror(errno) : "ok");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    init_mutex(&pi_lock, PTHREAD_PRIO_INHERIT, PTHREAD_MUTEX_STALLED);
    init_mutex(&robust_lock, PTHREAD_PRIO_NONE, PTHREAD_MUTEX_ROBUST);
    init_mutex(&robust_pi_lock, PTHREAD_PRIO_INHERIT, PTHREAD_MUTEX_ROBUST);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, pi_worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    printf("pi mutex: counter %ld\n", counter);
    printf("pi mutex: trylock free %d\n", pthread_mutex_trylock(&pi_lock));
    printf("pi mutex: unlock %d\n", pthread_mutex_unlock(&pi_lock));
    owner_dies("robust", &robust_lock);
    owner_dies("robust pi", &robust_pi_lock);
    int r = pthread_mutex_trylock(&robust_lock);
    printf("robust: trylock after second death: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    r = pthread_mutex_trylock(&robust_pi_lock);
    printf("robust pi: trylock after second death: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : strerror(r));
    raw_pi();
    wake_op();
    requeue_pi();
    return 0;
}
