/* A small static riscv64 program for the gdb tests: a call, a loop, a watched global. */
#include <unistd.h>

volatile long watched = 0;
long counter = 0;

__attribute__((noinline)) long add_up(long n)
{
    long sum = 0;
    for (long i = 1; i <= n; i++)
        sum += i;
    return sum;
}

int main(int argc, char **argv)
{
    (void)argv;
    while (argc > 1)             /* "spin": run until the debugger interrupts */
        counter++;
    long total = add_up(10);
    counter = total;
    watched = total + 1;         /* the write watchpoint fires here */
    write(1, "done\n", 5);
    return (int)(watched & 0x7f);
}
