/* The tick-to-trade floor of this host for `hft bench e2e`: the pipeline's traffic shape
 * with nothing in between. A venue process (pinned to CORE_VENUE, as the simulator is)
 * streams FRAME_BYTES frames at FRAMES_PER_S over loopback TCP and busy-polls an order
 * connection; a reader (pinned to CORE_READER, as the pipeline is) busy-polls the frames
 * and, on every ORDER_EVERY-th frame, sends an ORDER_BYTES order to the venue. Measured:
 * from the frame's recv() returning to the order's send() returning, the span that
 * tick-to-trade measures in the pipeline. Prints percentiles (ns) and the achieved rates
 * as one JSON line.
 * Usage: floor CORE_READER CORE_VENUE SECONDS FRAMES_PER_S ORDER_EVERY FRAME_BYTES ORDER_BYTES */
#include "bench.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int listener(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 1) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        exit(3);
    *port = ntohs(a.sin_port);
    return fd;
}

static int dial(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) exit(4);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int take(int lfd) {
    int fd = accept(lfd, NULL, NULL), one = 1;
    if (fd < 0) exit(5);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    close(lfd);
    return fd;
}

/* The venue: a frame every period, the order socket drained in between (busy-poll). */
static void venue(int core, uint16_t md_port, uint16_t order_port, int64_t end_ns,
                  int64_t period_ns, int frame_bytes) {
    pin(core);
    int md = dial(md_port), orders = dial(order_port);
    char frame[4096], sink[65536];
    memset(frame, 'x', sizeof frame);
    int64_t next = now_ns();
    for (int64_t t = next; t < end_ns; t = now_ns()) {
        if (t >= next) {
            for (int off = 0; off < frame_bytes;) {  /* loopback: a short write is rare */
                ssize_t w = send(md, frame + off, frame_bytes - off, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN) _exit(6);
                off += w > 0 ? (int)w : 0;
            }
            next += period_ns;
        }
        while (recv(orders, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
        SPIN_HINT();
    }
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc != 8) return 2;
    int core_reader = atoi(argv[1]), core_venue = atoi(argv[2]);
    double seconds = atof(argv[3]), rate = atof(argv[4]);
    long every = atol(argv[5]);
    int frame_bytes = atoi(argv[6]), order_bytes = atoi(argv[7]);
    if (rate <= 0 || every < 1 || frame_bytes < 1 || frame_bytes > 4096 || order_bytes < 1 ||
        order_bytes > 4096)
        return 2;
    uint16_t md_port, order_port;
    int md_l = listener(&md_port), order_l = listener(&order_port);
    int64_t start = now_ns(), end = start + (int64_t)(seconds * 1e9);
    pid_t child = fork();
    if (child == 0) venue(core_venue, md_port, order_port, end, (int64_t)(1e9 / rate), frame_bytes);
    pin(core_reader);
    int md = take(md_l), orders = take(order_l);
    long cap = (long)(seconds * rate / every) + 16, n = 0, frames = 0, pending = 0;
    int64_t *spans = malloc(sizeof(int64_t) * cap);
    char buf[65536], order[4096];
    memset(order, 'o', sizeof order);
    for (;;) {
        ssize_t r = recv(md, buf, sizeof buf, MSG_DONTWAIT);
        if (r == 0) break;  /* the venue closed: its time is up */
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) break;
            SPIN_HINT();
            continue;
        }
        int64_t t_recv = now_ns();
        pending += r;
        int act = 0;
        for (; pending >= frame_bytes; pending -= frame_bytes)
            if (++frames % every == 0) act = 1;
        if (act) {
            if (send(orders, order, order_bytes, MSG_NOSIGNAL) != order_bytes) break;
            if (n < cap) spans[n++] = now_ns() - t_recv;
        }
    }
    double wall = (now_ns() - start) / 1e9;
    waitpid(child, NULL, 0);
    if (n == 0) {
        printf("{\"n\": 0}\n");
        return 1;
    }
    qsort(spans, n, sizeof *spans, cmp_int64);
    printf("{\"p50\": %lld, \"p99\": %lld, \"p99.9\": %lld, \"max\": %lld, \"n\": %ld, "
           "\"frames_per_s\": %.1f, \"orders_per_s\": %.2f}\n",
           (long long)spans[n / 2], (long long)spans[(long)(n * 0.99)],
           (long long)spans[(long)(n * 0.999)], (long long)spans[n - 1], n, frames / wall,
           n / wall);
    return 0;
}
