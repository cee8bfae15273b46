// nfq-delay QUEUE BASE_MS JITTER_MS [SEED]: holds each packet the kernel queues to NFQUEUE
// QUEUE for BASE_MS ± JITTER_MS (uniform), then lets it through. Packets whose delays cross
// leave out of order: delay, jitter and reordering on a kernel without sch_netem
// (scripts/netfaults). At most MAX_HELD packets are held; beyond that they pass at once, so
// memory and every wait are bounded. SIGTERM/SIGINT releases everything held and exits.
// glibc's <arpa/inet.h> before <linux/netfilter.h>, which otherwise redefines struct in_addr.
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifndef NETLINK_NO_ENOBUFS
#define NETLINK_NO_ENOBUFS 5
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

enum { MAX_HELD = 65536 };
struct held { int64_t at_ms; uint32_t id; };
static struct held heap[MAX_HELD];
static int count;
static long base_ms, jitter_ms;
static unsigned long long packets, passed_at_once;
static volatile sig_atomic_t stopping;

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void push(struct held h) {
    int i = count++;
    while (i > 0 && heap[(i - 1) / 2].at_ms > h.at_ms) { heap[i] = heap[(i - 1) / 2]; i = (i - 1) / 2; }
    heap[i] = h;
}

static struct held pop(void) {
    struct held top = heap[0], last = heap[--count];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= count) break;
        if (c + 1 < count && heap[c + 1].at_ms < heap[c].at_ms) c++;
        if (heap[c].at_ms >= last.at_ms) break;
        heap[i] = heap[c];
        i = c;
    }
    if (count > 0) heap[i] = last;
    return top;
}

static int on_packet(struct nfq_q_handle *queue, struct nfgenmsg *message, struct nfq_data *data, void *unused) {
    (void)message, (void)unused;
    struct nfqnl_msg_packet_hdr *header = nfq_get_msg_packet_hdr(data);
    if (header == NULL) return 0;
    uint32_t id = ntohl(header->packet_id);
    packets++;
    long delay = base_ms + (jitter_ms > 0 ? (long)(random() % (2 * jitter_ms + 1)) - jitter_ms : 0);
    if (delay <= 0 || count >= MAX_HELD) {
        passed_at_once++;
        return nfq_set_verdict(queue, id, NF_ACCEPT, 0, NULL);
    }
    push((struct held){now_ms() + delay, id});
    return 0;
}

static void on_signal(int s) { (void)s; stopping = 1; }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: nfq-delay QUEUE BASE_MS JITTER_MS [SEED]\n");
        return 64;
    }
    int number = atoi(argv[1]);
    base_ms = atol(argv[2]);
    jitter_ms = atol(argv[3]);
    srandom(argc > 4 ? (unsigned)atol(argv[4]) : (unsigned)time(NULL));
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct nfq_handle *handle = nfq_open();
    if (handle == NULL) { perror("nfq_open"); return 1; }
    nfq_unbind_pf(handle, AF_INET);
    if (nfq_bind_pf(handle, AF_INET) < 0) { perror("nfq_bind_pf"); return 1; }
    struct nfq_q_handle *queue = nfq_create_queue(handle, (uint16_t)number, on_packet, NULL);
    if (queue == NULL) { perror("nfq_create_queue"); return 1; }
    if (nfq_set_mode(queue, NFQNL_COPY_META, 0) < 0) { perror("nfq_set_mode"); return 1; }
    nfq_set_queue_maxlen(queue, MAX_HELD);
    int fd = nfq_fd(handle);
    int on = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    printf("ready\n");
    fflush(stdout);
    static char buffer[65536];
    while (!stopping) {
        int64_t now = now_ms();
        while (count > 0 && heap[0].at_ms <= now) nfq_set_verdict(queue, pop().id, NF_ACCEPT, 0, NULL);
        int wait = count > 0 ? (int)(heap[0].at_ms - now) : 200;
        if (wait > 200) wait = 200;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, wait) > 0) {
            for (int i = 0; i < 256; i++) {
                ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
                if (n <= 0) break;
                nfq_handle_packet(handle, buffer, (int)n);
            }
        }
    }
    while (count > 0) nfq_set_verdict(queue, pop().id, NF_ACCEPT, 0, NULL);
    fprintf(stderr, "nfq-delay: %llu packets, %llu passed at once\n", packets, passed_at_once);
    nfq_destroy_queue(queue);
    nfq_close(handle);
    return 0;
}
