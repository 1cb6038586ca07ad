/* Loops that clang -O3 -march=rv64gcv turns into RVV code (gcc 12 does not vectorize
 * for RISC-V): integer and float element-wise arithmetic, a reduction, a masked
 * (conditional) update, a strided gather and a byte-wise string transform.  It prints
 * checksums and whether AT_HWCAP has V, so that a run under pemu compares line by line
 * with one under QEMU. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>

#define N 4099 /* not a multiple of any VLEN: the tail loop runs too */

static int32_t a[N], b[N], c[N];
static float fa[N], fb[N], fc[N];
static uint8_t text[N];

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

__attribute__((noinline)) static void saxpy_int(int32_t k) {
    for (int i = 0; i < N; i++) c[i] = a[i] * k + b[i];
}

__attribute__((noinline)) static void saxpy_float(float k) {
    for (int i = 0; i < N; i++) fc[i] = fa[i] * k + fb[i];
}

__attribute__((noinline)) static int64_t sum(const int32_t *v) {
    int64_t s = 0;
    for (int i = 0; i < N; i++) s += v[i];
    return s;
}

__attribute__((noinline)) static void clamp(int32_t lo, int32_t hi) {
    for (int i = 0; i < N; i++) c[i] = c[i] < lo ? lo : (c[i] > hi ? hi : c[i]);
}

__attribute__((noinline)) static void gather(int stride) {
    for (int i = 0; i < N / 4; i++) b[i] = a[(i * stride) % N];
}

__attribute__((noinline)) static void upcase(void) {
    for (int i = 0; i < N; i++)
        text[i] = (text[i] >= 'a' && text[i] <= 'z') ? text[i] - 32 : text[i];
}

int main(void) {
    uint64_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        a[i] = (int32_t)(seed >> 33) - (1 << 29);
        b[i] = (int32_t)(seed >> 17) & 0xffff;
        fa[i] = (float)(int32_t)(seed >> 40) / 1024.0f;
        fb[i] = (float)(i % 97) * 0.25f;
        text[i] = (uint8_t)(' ' + (seed >> 50) % 95);
    }
    unsigned long hwcap = getauxval(AT_HWCAP);
    printf("hwcap V: %d\n", (int)((hwcap >> ('v' - 'a')) & 1));
    saxpy_int(7);
    printf("saxpy int: %lld\n", (long long)sum(c));
    clamp(-1000000, 1000000);
    printf("clamp: %lld\n", (long long)sum(c));
    saxpy_float(1.5f);
    uint64_t h = 14695981039346656037ull;
    for (int i = 0; i < N; i++) {
        uint32_t bits;
        memcpy(&bits, &fc[i], 4);
        h = mix(h, bits);
    }
    printf("saxpy float: %016llx\n", (unsigned long long)h);
    gather(7);
    printf("gather: %lld\n", (long long)sum(b));
    upcase();
    h = 14695981039346656037ull;
    for (int i = 0; i < N; i++) h = mix(h, text[i]);
    printf("upcase: %016llx\n", (unsigned long long)h);
    printf("VECTORIZED-DONE\n");
    return 0;
}
