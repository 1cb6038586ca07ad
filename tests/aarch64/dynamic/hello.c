/* Dynamically linked hello: argv, the environment, stdio through glibc's ld.so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    printf("hello from a dynamic arm64 program, %d args\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d] = %s (%zu bytes)\n", i, argv[i], strlen(argv[i]));
    const char *v = getenv("PEMU_DYN_TEST");
    printf("PEMU_DYN_TEST=%s\n", v ? v : "(unset)");
    fputs("to stderr\n", stderr);
    return 3;
}
