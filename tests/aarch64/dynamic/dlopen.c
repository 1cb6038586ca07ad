/* dlopen of libraries libc6 ships (libm, libresolv), dlsym, dladdr, a bad name's
 * dlerror. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    void *m = dlopen("libm.so.6", RTLD_NOW);
    if (!m) {
        printf("dlopen libm: %s\n", dlerror());
        return 1;
    }
    double (*cosine)(double) = (double (*)(double))dlsym(m, "cos");
    double (*power)(double, double) = (double (*)(double, double))dlsym(m, "pow");
    double (*logarithm)(double) = (double (*)(double))dlsym(m, "log");
    printf("cos(1) = %.17g\npow(2, 0.5) = %.17g\nlog(10) = %.17g\n", cosine(1.0),
           power(2.0, 0.5), logarithm(10.0));
    Dl_info info;
    if (dladdr((void *)cosine, &info))
        printf("cos is %s in %s\n", info.dli_sname, strrchr(info.dli_fname, '/') ?
               strrchr(info.dli_fname, '/') + 1 : info.dli_fname);
    void *r = dlopen("libresolv.so.2", RTLD_LAZY);
    printf("libresolv %s, dn_expand %s\n", r ? "loaded" : dlerror(),
           r && dlsym(r, "__dn_expand") ? "found" : "missing");
    void *bad = dlopen("libdoes-not-exist.so.7", RTLD_NOW);
    printf("bad: %s (%s)\n", bad ? "loaded?" : "refused", dlerror() ? "with an error" : "");
    dlclose(m);
    return 0;
}
