/* printf and strtod of floats: glibc's FP formatting (FP and Advanced SIMD registers). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    static const double values[] = {0.0, -0.0, 1.0, -1.5, 3.141592653589793, 1e-310, 1e300,
                                    DBL_MAX, DBL_MIN, 2.5e-7, 123456789.125, 0.1, 1.0 / 3};
    for (unsigned i = 0; i < sizeof values / sizeof values[0]; i++) {
        double v = values[i];
        printf("%f|%.3e|%g|%a|%.17g\n", v, v, v, v, v);
    }
    printf("%f %f %f\n", INFINITY, -INFINITY, NAN);
    float f = 1.1f;
    for (int i = 0; i < 5; i++, f *= 3.7f)
        printf("%.9g %.2f\n", f, (double)f);
    const char *texts[] = {"1e10", "0x1.8p3", "-12.5e-3", "inf", "nan", "1e400", "4.9e-324"};
    for (unsigned i = 0; i < 7; i++)
        printf("strtod(%s) = %.17g\n", texts[i], strtod(texts[i], NULL));
    double sum = 0;
    for (int i = 1; i <= 1000; i++)
        sum += sqrt((double)i) / i;
    printf("sum %.15f floor %.1f fmod %.6f\n", sum, floor(sum), fmod(sum, 0.7));
    return 0;
}
