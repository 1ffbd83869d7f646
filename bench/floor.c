/* The Adam-shaped memory floor written in C: a cross-check that the Numba floor in optim_step.py is
 * the machine's limit and not Numba's.
 *
 *     gcc -O3 -march=native -fopenmp bench/floor.c -o /tmp/floor
 *     OMP_NUM_THREADS=2 OMP_PROC_BIND=close /tmp/floor 100000 1000000 10000000
 *
 * It moves the bytes of one fused Adam step on float32 arrays (reads p, g, m, v; writes p, m, v) with
 * additions only, the same loop as floor4 in optim_step.py, and prints nanoseconds per element:
 * the median, min and max of 15 timed batches after one untimed call. bench/RESULTS.md quotes it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <omp.h>

#define REPEATS 15

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void floor4(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long n) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) {
        m[i] += g[i];
        v[i] += g[i];
        p[i] += m[i] + v[i];
    }
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void measure(long n) {
    float *arrays[4];
    for (int k = 0; k < 4; k++) {
        arrays[k] = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
        if (arrays[k] == NULL) {
            fprintf(stderr, "floor: cannot allocate %ld floats\n", n);
            exit(2);
        }
        for (long i = 0; i < n; i++)
            arrays[k][i] = 1e-3f * (float)(i % 7);
    }
    long calls = n >= 10000000 ? 20 : 20000000 / n + 1; /* about 0.1 s a batch */
    double ns[REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        floor4(arrays[0], arrays[1], arrays[2], arrays[3], n);
        double start = seconds();
        for (long c = 0; c < calls; c++)
            floor4(arrays[0], arrays[1], arrays[2], arrays[3], n);
        ns[r] = (seconds() - start) / calls / n * 1e9;
    }
    qsort(ns, REPEATS, sizeof ns[0], by_value);
    printf("n=%ld threads=%d: %.3f ns/element (min %.3f, max %.3f)\n", n, omp_get_max_threads(), ns[REPEATS / 2],
           ns[0], ns[REPEATS - 1]);
    for (int k = 0; k < 4; k++)
        free(arrays[k]);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: floor N [N ...]  (element counts, e.g. 1000000)\n");
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        long n = atol(argv[a]);
        if (n <= 0) {
            fprintf(stderr, "floor: element count must be a positive integer, got '%s'\n", argv[a]);
            return 2;
        }
        measure(n);
    }
    return 0;
}
