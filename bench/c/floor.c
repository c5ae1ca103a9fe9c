/* The floor: a minimal C WebSocket sender writing the same frames to the same connections.
 *
 * Accepts --conns WebSocket connections (answers the upgrade with a canned 101, offering
 * permessage-deflate back when asked and --deflate 1), prints "READY", and after "START" on
 * stdin writes the frames of --frames (uint32 little-endian length + UTF-8 JSON, as written by
 * bench/frames.py) in rounds: round r sends frame r % K to every connection whose previous frame
 * went out whole (a connection with a partial write left is skipped, like the hub skips a
 * client that is not ready), one write(2) per frame, as fast as one core allows. With deflate
 * each frame is compressed once (raw deflate, no context) and the same bytes go to everyone.
 * "STOP" prints "RESULT {json}" and exits; so does --max-seconds.
 */
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <zlib.h>

typedef struct {
    int fd;
    int open;
    int deflate;
    char req[2048];
    int reqlen;
    const uint8_t *pend;
    size_t pendlen;
} peer_t;

typedef struct {
    uint8_t *data;
    size_t len;
} blob_t;

static blob_t *plain, *packed;
static int nframes;

static blob_t ws_frame(const uint8_t *p, size_t n, int rsv1) {
    blob_t b;
    b.data = malloc(n + 10);
    size_t h = 0;
    b.data[h++] = 0x81 | (rsv1 ? 0x40 : 0);
    if (n < 126) {
        b.data[h++] = n;
    } else if (n < 65536) {
        b.data[h++] = 126;
        b.data[h++] = n >> 8;
        b.data[h++] = n & 0xff;
    } else {
        b.data[h++] = 127;
        for (int i = 7; i >= 0; i--) b.data[h++] = (n >> (8 * i)) & 0xff;
    }
    memcpy(b.data + h, p, n);
    b.len = h + n;
    return b;
}

static blob_t deflate_frame(const uint8_t *p, size_t n) {
    z_stream z = {0};
    deflateInit2(&z, 6, Z_DEFLATED, -12, 5, Z_DEFAULT_STRATEGY);
    size_t cap = deflateBound(&z, n) + 16;
    uint8_t *out = malloc(cap);
    z.next_in = (Bytef *)p;
    z.avail_in = n;
    z.next_out = out;
    z.avail_out = cap;
    deflate(&z, Z_SYNC_FLUSH);
    size_t m = cap - z.avail_out;
    deflateEnd(&z);
    if (m >= 4) m -= 4; /* strip 00 00 ff ff (RFC 7692) */
    blob_t b = ws_frame(out, m, 1);
    free(out);
    return b;
}

static void load_frames(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror("frames");
        exit(3);
    }
    int cap = 16;
    plain = malloc(cap * sizeof(blob_t));
    packed = malloc(cap * sizeof(blob_t));
    uint32_t len;
    while (fread(&len, 4, 1, f) == 1) {
        uint8_t *p = malloc(len);
        if (fread(p, 1, len, f) != len) break;
        if (nframes == cap) {
            cap *= 2;
            plain = realloc(plain, cap * sizeof(blob_t));
            packed = realloc(packed, cap * sizeof(blob_t));
        }
        plain[nframes] = ws_frame(p, len, 0);
        packed[nframes] = deflate_frame(p, len);
        nframes++;
        free(p);
    }
    fclose(f);
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    int port = 0, conns = 0, allow_deflate = 0;
    double max_seconds = 300;
    const char *frames = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns")) conns = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--frames")) frames = argv[i + 1];
        else if (!strcmp(argv[i], "--deflate")) allow_deflate = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-seconds")) max_seconds = atof(argv[i + 1]);
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    load_frames(frames);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) {
        perror("listen");
        return 3;
    }
    printf("LISTENING\n");
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    static peer_t stdin_peer = {.fd = 0};
    e.data.ptr = &stdin_peer;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e);
    int cap = conns + 256; /* probes of the port that never upgrade take a slot each */
    peer_t *peers = calloc(cap, sizeof(peer_t));
    int npeers = 0, nopen = 0, running = 0, ready = 0;
    int64_t t0 = mono_ns(), tstart = 0;
    long long written = 0, bytes = 0, skipped = 0, rounds = 0, partial = 0;
    double cpu0 = 0;
    struct epoll_event evs[512];
    char line[128];
    size_t ll = 0;
    for (;;) {
        if ((mono_ns() - t0) / 1e9 > max_seconds) return 2;
        if (!ready && nopen == conns) {
            printf("READY {\"opened\":%d,\"frames\":%d}\n", nopen, nframes);
            fflush(stdout);
            ready = 1;
        }
        int n = epoll_wait(ep, evs, 512, running ? 0 : 5);
        for (int i = 0; i < n; i++) {
            peer_t *p = evs[i].data.ptr;
            if (p == NULL) {
                for (;;) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                    if (fd < 0) break;
                    if (npeers >= cap) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    peer_t *q = &peers[npeers++];
                    q->fd = fd;
                    struct epoll_event pe = {.events = EPOLLIN, .data.ptr = q};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &pe);
                }
                continue;
            }
            if (p == &stdin_peer) {
                ssize_t r = read(0, line + ll, sizeof line - 1 - ll);
                if (r <= 0) return 0;
                ll += r;
                line[ll] = 0;
                if (strstr(line, "START")) {
                    running = 1;
                    tstart = mono_ns();
                    cpu0 = cpu_s();
                    ll = 0;
                    line[0] = 0;
                }
                if (strstr(line, "STOP")) {
                    double secs = (mono_ns() - tstart) / 1e9;
                    printf("RESULT {\"seconds\":%.4f,\"frames\":%lld,\"bytes\":%lld,"
                           "\"rounds\":%lld,\"skipped\":%lld,\"partial\":%lld,\"cpu_s\":%.4f,"
                           "\"open\":%d}\n",
                           secs, written, bytes, rounds, skipped, partial, cpu_s() - cpu0, nopen);
                    fflush(stdout);
                    return 0;
                }
                continue;
            }
            char buf[4096];
            ssize_t r = read(p->fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, p->fd, NULL);
                close(p->fd);
                if (p->open) nopen--;
                p->open = 0;
                p->fd = -1;
                continue;
            }
            if (!p->open) {
                int take = r < (ssize_t)(sizeof p->req - 1 - p->reqlen) ? (int)r
                                                                         : (int)(sizeof p->req - 1 - p->reqlen);
                memcpy(p->req + p->reqlen, buf, take);
                p->reqlen += take;
                p->req[p->reqlen] = 0;
                if (strstr(p->req, "\r\n\r\n")) {
                    p->deflate = allow_deflate && strstr(p->req, "permessage-deflate") != NULL;
                    char resp[512];
                    int m = snprintf(resp, sizeof resp,
                                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                     "Connection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n%s\r\n",
                                     p->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                                  "server_max_window_bits=12\r\n"
                                                : "");
                    if (write(p->fd, resp, m) == m) {
                        p->open = 1;
                        nopen++;
                    }
                }
            }
            /* client frames after the handshake (the subscribe op, pongs) are discarded */
        }
        if (!running) continue;
        const blob_t *set = NULL;
        int fi = rounds % nframes;
        for (int i = 0; i < npeers; i++) {
            peer_t *p = &peers[i];
            if (!p->open) continue;
            if (p->pendlen) {
                ssize_t w = write(p->fd, p->pend, p->pendlen);
                if (w > 0) {
                    p->pend += w;
                    p->pendlen -= w;
                    bytes += w;
                    if (p->pendlen == 0) written++;
                }
                if (p->pendlen) {
                    skipped++;
                    continue;
                }
            }
            set = p->deflate ? packed : plain;
            const blob_t *b = &set[fi];
            ssize_t w = write(p->fd, b->data, b->len);
            if (w == (ssize_t)b->len) {
                written++;
                bytes += w;
            } else if (w > 0) {
                partial++;
                bytes += w;
                p->pend = b->data + w;
                p->pendlen = b->len - w;
            } else {
                skipped++;
            }
        }
        rounds++;
    }
}
