/* What the C references of bench/ share: pinning, the clock the pipeline reads
 * (CLOCK_MONOTONIC), the spin hint, and a sort order for percentiles. */
#ifndef HFT_BENCH_H
#define HFT_BENCH_H
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SPIN_HINT() _mm_pause()
#elif defined(__aarch64__)
#define SPIN_HINT() __asm__ volatile("yield")
#else
#define SPIN_HINT() ((void)0)
#endif

static inline void pin(int core) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    sched_setaffinity(0, sizeof set, &set);
}

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_int64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}
#endif
