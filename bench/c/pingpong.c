/* Hardware-limit reference for `hft bench transport`: two processes pinned to two cores
 * ping-pong a counter through C11 atomics (release store, acquire load, pause while
 * spinning), each side on its own 128-byte line. Prints one-way latency (RTT / 2)
 * percentiles in ns as JSON; with RAW_FILE, also every round trip (int64 ns, native order)
 * so a caller can pool rounds.  Usage: pingpong CORE_A CORE_B ITERATIONS WARMUP [RAW_FILE] */
#include "bench.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct shared {
    _Alignas(128) _Atomic int64_t ping;
    _Alignas(128) _Atomic int64_t pong;
};

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) return 2;
    int core_a = atoi(argv[1]), core_b = atoi(argv[2]);
    long n = atol(argv[3]), warmup = atol(argv[4]);
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    atomic_store(&s->ping, 0);
    atomic_store(&s->pong, 0);
    pid_t child = fork();
    if (child == 0) {  /* ponger: echo every ping */
        pin(core_b);
        for (int64_t i = 1; i <= n + warmup; i++) {
            while (atomic_load_explicit(&s->ping, memory_order_acquire) != i) SPIN_HINT();
            atomic_store_explicit(&s->pong, i, memory_order_release);
        }
        _exit(0);
    }
    pin(core_a);
    int64_t *rtt = malloc(sizeof(int64_t) * n);
    for (int64_t i = 1; i <= n + warmup; i++) {
        int64_t t0 = now_ns();
        atomic_store_explicit(&s->ping, i, memory_order_release);
        while (atomic_load_explicit(&s->pong, memory_order_acquire) != i) SPIN_HINT();
        int64_t t1 = now_ns();
        if (i > warmup) rtt[i - warmup - 1] = t1 - t0;
    }
    waitpid(child, NULL, 0);
    if (argc == 6) {
        FILE *raw = fopen(argv[5], "wb");
        if (!raw || fwrite(rtt, sizeof *rtt, n, raw) != (size_t)n) return 3;
        fclose(raw);
    }
    qsort(rtt, n, sizeof *rtt, cmp_int64);
    printf("{\"p50\": %.1f, \"p99\": %.1f, \"p99.9\": %.1f, \"n\": %ld}\n",
           rtt[n / 2] / 2.0, rtt[(long)(n * 0.99)] / 2.0, rtt[(long)(n * 0.999)] / 2.0, n);
    return 0;
}
