/* glibc's string functions (its Advanced SIMD memcpy, memset, strlen, strchr, memchr,
 * strcmp...) over every alignment and many lengths; a checksum of each result. */
#include <stdio.h>
#include <string.h>

static unsigned char src[512], dst[600];

static unsigned long mix(unsigned long h, unsigned long v)
{
    return (h ^ v) * 0x100000001b3UL;
}

int main(void)
{
    for (unsigned i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 7 + 1 + (i % 13 == 0 ? 100 : 0));
    unsigned long h = 14695981039346656037UL;
    for (int align = 0; align < 16; align++) {
        for (int len = 0; len < 300; len += 1 + len / 8) {
            memset(dst, 0xEE, sizeof dst);
            memcpy(dst + align, src + (align * 3) % 16, len);
            for (int i = 0; i < len + 32; i++)
                h = mix(h, dst[i]);
            memmove(dst + align + 5, dst + align, len);
            memset(dst + align, align, len / 2);
            h = mix(h, (unsigned long)memcmp(dst, src, len) + 17);
            for (int i = 0; i < len + 40; i++)
                h = mix(h, dst[i]);
            char *s = (char *)dst + align;
            memset(s, 'a' + align, len);
            s[len] = 0;
            h = mix(h, strlen(s));
            h = mix(h, strnlen(s, len / 2 + 1));
            char *c = strchr(s, 'a' + align);
            h = mix(h, c ? (unsigned long)(c - s) : 999);
            h = mix(h, strchr(s, 0) - s);
            h = mix(h, memchr(s, 0, len + 1) ? 1 : 0);
            h = mix(h, (unsigned long)(strrchr(s, 'a' + align) ? strrchr(s, 'a' + align) - s : 0));
        }
        printf("align %2d: %016lx\n", align, h);
    }
    const char *a = "the quick brown fox jumps over the lazy dog";
    printf("strcmp %d %d %d\n", strcmp(a, a) == 0, strcmp(a, "the quick") > 0,
           strncmp(a, "the quack", 6) == 0);
    printf("strstr %s\n", strstr(a, "lazy"));
    printf("strspn %zu strcspn %zu\n", strspn(a, "eht "), strcspn(a, "xyz"));
    char buf[64];
    strcpy(buf, a + 4);
    strcat(buf, "!");
    printf("%s (%zu)\n", buf, strlen(buf));
    return 0;
}
