/* CPU-bound work for the benchmark: integer hashing, a sieve, and some floating point. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)i;
        h *= 1099511628211ULL;
    }
    char *sieve = calloc(n + 1, 1);
    int primes = 0;
    for (int i = 2; i <= n; i++) {
        if (!sieve[i]) {
            primes++;
            for (long j = (long)i * i; j <= n; j += i)
                sieve[j] = 1;
        }
    }
    double x = 0;
    for (int i = 1; i < n / 10; i++)
        x += 1.0 / ((double)i * i);
    printf("hash %016llx primes %d basel %.9f\n", (unsigned long long)h, primes, x);
    free(sieve);
    return 0;
}
