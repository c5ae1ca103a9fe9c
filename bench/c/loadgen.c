/* Load generator: many WebSocket (or MQTT) client connections in one epoll loop.
 *
 * Counts every frame and byte it receives, and on a sample of connections ("samplers") parses
 * the frames to measure publish -> client latency against the publisher's log (common.h).
 * Controlled over stdin/stdout by bench/run.py:
 *   it connects and subscribes everything, prints "READY {json}", waits for "START" (resets the
 *   counters, opens snapshot probes spread over --seconds), and on "STOP" prints "RESULT {json}",
 *   writes the latency samples (int32 microseconds) to --latfile and exits. It also exits by
 *   itself after --max-seconds, whatever happens.
 *
 * Modes: --mode ws  (RFC 6455 client: handshake, masked subscribe op, pong, optional
 *                     permessage-deflate offer like a browser; inflates only on samplers)
 *        --mode mqtt (MQTT 3.1.1 QoS 0 subscriber)
 * The Sec-WebSocket-Accept header is not verified: this is a benchmark client.
 */
#include "common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { ST_FREE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

typedef struct {
    int fd;
    int state;
    int idx;
    uint8_t sampler, probe, deflate, ready, tries;
    /* frame parser */
    uint8_t hdr[16];
    int hdr_have, hdr_need;
    int in_payload;
    uint64_t left;
    uint8_t opcode, rsv1;
    /* payload / handshake accumulation (samplers, control frames, handshake) */
    char *buf;
    size_t len, cap;
    uint32_t msgs;
    int64_t t_connect, t_sub, t_snapshot;
    z_stream *zs;
} conn_t;

/* options */
static const char *o_mode = "ws", *o_host = "127.0.0.1", *o_path = "/ws/v1";
static const char *o_sub = "{\"op\":\"subscribe\",\"all\":true}";
static const char *o_topic = "signals/+/spat", *o_expect = "gateway";
static const char *o_publog = "", *o_latfile = "", *o_src = "127.0.0.1";
static int o_port = 8000, o_conns = 100, o_sample_every = 50, o_probes = 0, o_deflate = 0;
static int o_inflight = 256, o_browser = 0;
static double o_seconds = 10, o_max_seconds = 300, o_ramp_timeout = 120;

static conn_t *conns;
static int nconns_total; /* regular + probe slots */
static int epfd;
static publog_t *publog;
static struct in_addr srcs[64];
static int nsrc;
static int mqtt_mode, raw_mode;
static char rbuf[1 << 18];
static char zbuf[1 << 22];

/* stats */
static int measuring;
static int64_t m_start_mono, m_frames, m_bytes, m_closed, m_pings;
/* publish -> client; gateway receive -> client; publish -> gateway receive (updated_ms) */
static int32_t *samples, *gw_samples, *in_samples;
static size_t nsamples, ngw_samples, nin_samples, cap_samples = 8u << 20;
static int64_t probe_results[256][2];
static int nprobe_results;
static int opened, failed, ready_count, ramp_closed, deflated;
static double snap_ms[1 << 15];
static int nsnap;

static void die(const char *m) {
    perror(m);
    exit(3);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void ep(int op, conn_t *c, uint32_t events) {
    struct epoll_event e = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &e) < 0 && op != EPOLL_CTL_DEL) die("epoll_ctl");
}

static void append(conn_t *c, const char *d, size_t n) {
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n) cap *= 2;
        c->buf = realloc(c->buf, cap);
        if (!c->buf) die("realloc");
        c->cap = cap;
    }
    memcpy(c->buf + c->len, d, n);
    c->len += n;
}

static void close_conn(conn_t *c) {
    if (c->state == ST_CLOSED || c->state == ST_FREE) return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->state = ST_CLOSED;
    if (!c->probe) {
        if (measuring)
            m_closed++;
        else
            ramp_closed++;
    }
    free(c->buf);
    c->buf = NULL;
    c->cap = c->len = 0;
    if (c->zs) {
        inflateEnd(c->zs);
        free(c->zs);
        c->zs = NULL;
    }
}

static void write_all(conn_t *c, const void *d, size_t n) {
    ssize_t w = write(c->fd, d, n);
    if (w != (ssize_t)n) close_conn(c); /* tiny writes into an empty buffer: all or nothing */
}

static void ws_send(conn_t *c, int opcode, const char *payload, size_t n) {
    uint8_t f[256 + 14];
    size_t h = 0;
    f[h++] = 0x80 | opcode;
    if (n < 126) {
        f[h++] = 0x80 | n;
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = n >> 8;
        f[h++] = n & 0xff;
    }
    uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + h, mask, 4);
    h += 4;
    if (n > 256) n = 256;
    for (size_t i = 0; i < n; i++) f[h + i] = payload[i] ^ mask[i & 3];
    write_all(c, f, h + n);
}

static void start_conn(conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr = srcs[c->idx % nsrc]};
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) die("bind");
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(o_port)};
    inet_pton(AF_INET, o_host, &dst.sin_addr);
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->t_connect = mono_ns();
    c->hdr_have = 0;
    c->in_payload = 0;
    c->msgs = 0;
    c->len = 0;
    int r = connect(fd, (struct sockaddr *)&dst, sizeof dst);
    if (r < 0 && errno != EINPROGRESS) {
        close(fd);
        c->state = ST_CLOSED;
        failed++;
        return;
    }
    ep(EPOLL_CTL_ADD, c, EPOLLOUT);
}

static void send_handshake(conn_t *c) {
    char req[1024];
    int n;
    if (mqtt_mode) {
        /* CONNECT: MQTT 3.1.1, clean session, keepalive 0; then SUBSCRIBE QoS 0 */
        char id[32];
        int idn = snprintf(id, sizeof id, "lg%d-%d", getpid(), c->idx);
        uint8_t *p = (uint8_t *)req;
        int rem = 10 + 2 + idn;
        *p++ = 0x10;
        *p++ = rem;
        memcpy(p, "\x00\x04MQTT\x04\x02\x00\x00", 10);
        p += 10;
        *p++ = 0;
        *p++ = idn;
        memcpy(p, id, idn);
        p += idn;
        int tl = strlen(o_topic);
        *p++ = 0x82;
        *p++ = 2 + 2 + tl + 1;
        *p++ = 0;
        *p++ = 1;
        *p++ = tl >> 8;
        *p++ = tl & 0xff;
        memcpy(p, o_topic, tl);
        p += tl;
        *p++ = 0;
        n = (int)((char *)p - req);
    } else {
        n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s%s\r\n",
                     o_path, o_host, o_port,
                     o_deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                 "client_max_window_bits\r\n"
                               : "",
                     /* the rest of what a desktop browser sends with an upgrade */
                     o_browser ? "Pragma: no-cache\r\nCache-Control: no-cache\r\n"
                                 "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"
                                 " (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n"
                                 "Origin: https://signals.yantai.example\r\n"
                                 "Accept-Encoding: gzip, deflate, br, zstd\r\n"
                                 "Accept-Language: zh-CN,zh;q=0.9,en;q=0.8\r\n"
                               : "");
    }
    c->state = ST_HANDSHAKE;
    ep(EPOLL_CTL_MOD, c, EPOLLIN);
    write_all(c, req, n);
}

static void add_sample(int64_t now, int64_t pub) {
    if (pub <= 0 || nsamples >= cap_samples) return;
    int64_t us = (now - pub) / 1000;
    if (us < 0) us = 0;
    if (us > INT32_MAX) us = INT32_MAX;
    samples[nsamples++] = (int32_t)us;
}

/* Latency of every view in a frame (gateway update) or of a raw controller message. */
static void sample_payload(const char *p, size_t n, int64_t now, int topic_slot) {
    const char *end = p + n;
    if (!publog) return;
    if (topic_slot >= 0) { /* MQTT: id from the topic */
        const char *s = find(p, end, "\"seq\":");
        if (s) add_sample(now, publog_by_seq(publog, topic_slot, scan_int(s + 6, end)));
        return;
    }
    if (n > 16 && memcmp(p, "{\"type\":\"update\"", 16) == 0) {
        const char *s = p;
        while ((s = find(s, end, "{\"id\":\"")) != NULL) {
            int slot = id_number(s + 7, end);
            const char *u = find(s, end, "\"updated_ms\":");
            if (!u) break;
            int64_t ms = scan_int(u + 13, end);
            if (slot >= 0 && ms > 0) {
                int64_t pub = publog_by_time(publog, slot, (ms + 1) * 1000000LL - 1);
                add_sample(now, pub);
                if (pub > 0 && nin_samples < cap_samples) {
                    int64_t us = (ms * 1000000LL + 500000LL - pub) / 1000; /* mid-millisecond */
                    in_samples[nin_samples++] = (int32_t)(us < 0 ? 0 : us > INT32_MAX ? INT32_MAX : us);
                }
                if (ngw_samples < cap_samples) {
                    int64_t us = (now - ms * 1000000LL) / 1000;
                    gw_samples[ngw_samples++] = (int32_t)(us < 0 ? 0 : us > INT32_MAX ? INT32_MAX : us);
                }
            }
            s = u;
        }
    } else if (n > 1 && p[0] == '{' && memcmp(p, "{\"type\"", 7) != 0) {
        const char *s = find(p, end, "\"id\":\"");
        const char *q = find(p, end, "\"seq\":");
        if (s && q) {
            int slot = id_number(s + 6, end);
            if (slot >= 0) add_sample(now, publog_by_seq(publog, slot, scan_int(q + 6, end)));
        }
    }
}

static void on_snapshot(conn_t *c) {
    c->t_snapshot = mono_ns();
    if (c->probe) {
        if (nprobe_results < 256) {
            probe_results[nprobe_results][0] = c->t_snapshot - c->t_sub;
            probe_results[nprobe_results][1] = c->t_snapshot - c->t_connect;
            nprobe_results++;
        }
        close_conn(c);
        return;
    }
    if (!c->ready) {
        c->ready = 1;
        ready_count++;
        if (nsnap < (int)(sizeof snap_ms / sizeof snap_ms[0]))
            snap_ms[nsnap++] = (c->t_snapshot - c->t_sub) / 1e6;
    }
}

static void ws_message(conn_t *c, int64_t now) {
    c->msgs++;
    if (measuring && !c->probe) m_frames++;
    if (!raw_mode && c->msgs == 2) {
        on_snapshot(c);
        if (c->probe) return;
    }
    if (!c->sampler) return;
    const char *p = c->buf;
    size_t n = c->len;
    if (c->rsv1 && c->deflate) {
        if (!c->zs) {
            c->zs = calloc(1, sizeof(z_stream));
            inflateInit2(c->zs, -15);
        }
        append(c, "\x00\x00\xff\xff", 4);
        c->zs->next_in = (Bytef *)c->buf;
        c->zs->avail_in = c->len;
        c->zs->next_out = (Bytef *)zbuf;
        c->zs->avail_out = sizeof zbuf;
        int r = inflate(c->zs, Z_SYNC_FLUSH);
        if (r != Z_OK && r != Z_BUF_ERROR) {
            fprintf(stderr, "inflate failed: %d\n", r);
            return;
        }
        p = zbuf;
        n = sizeof zbuf - c->zs->avail_out;
    }
    if (measuring && (raw_mode || c->msgs > 2)) sample_payload(p, n, now, -1);
}

static void ws_frame_done(conn_t *c, int64_t now) {
    switch (c->opcode) {
    case 0x9: /* ping -> pong */
        m_pings++;
        ws_send(c, 0xA, c->buf ? c->buf : "", c->len);
        break;
    case 0x8:
        close_conn(c);
        return;
    case 0xA:
        break;
    default:
        ws_message(c, now);
    }
    c->len = 0;
}

static void ws_feed(conn_t *c, const uint8_t *d, size_t n, int64_t now) {
    while (n > 0 && c->state == ST_OPEN) {
        if (!c->in_payload) {
            if (c->hdr_have < 2) {
                c->hdr[c->hdr_have++] = *d++;
                n--;
                if (c->hdr_have == 2) {
                    int l7 = c->hdr[1] & 0x7f;
                    c->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (c->hdr[1] & 0x80 ? 4 : 0);
                }
                if (c->hdr_have < 2) continue;
            }
            while (c->hdr_have < c->hdr_need && n > 0) {
                c->hdr[c->hdr_have++] = *d++;
                n--;
            }
            if (c->hdr_have < c->hdr_need) return;
            int l7 = c->hdr[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126) len = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            if (l7 == 127) {
                len = 0;
                for (int i = 0; i < 8; i++) len = (len << 8) | c->hdr[2 + i];
            }
            uint8_t op = c->hdr[0] & 0x0f;
            if (op != 0) { /* a continuation keeps the first frame's opcode and RSV1 */
                c->opcode = op;
                c->rsv1 = (c->hdr[0] & 0x40) != 0;
            }
            c->left = len;
            c->in_payload = 1;
            c->hdr_have = 0;
        }
        size_t take = c->left < n ? c->left : n;
        int keep = c->sampler || c->opcode >= 0x8;
        if (keep && take) append(c, (const char *)d, take);
        d += take;
        n -= take;
        c->left -= take;
        if (c->left == 0) {
            c->in_payload = 0;
            int fin = (c->hdr[0] & 0x80) != 0;
            (void)fin;
            ws_frame_done(c, now);
        }
    }
}

static void mqtt_feed(conn_t *c, const uint8_t *d, size_t n, int64_t now) {
    while (n > 0 && c->state == ST_OPEN) {
        if (!c->in_payload) {
            c->hdr[c->hdr_have++] = *d++;
            n--;
            if (c->hdr_have < 2 || (c->hdr[c->hdr_have - 1] & 0x80)) {
                if (c->hdr_have >= 6) {
                    close_conn(c);
                    return;
                }
                continue;
            }
            uint64_t len = 0, mul = 1;
            for (int i = 1; i < c->hdr_have; i++) {
                len += (c->hdr[i] & 0x7f) * mul;
                mul *= 128;
            }
            c->opcode = c->hdr[0] >> 4;
            c->left = len;
            c->in_payload = 1;
            c->hdr_have = 0;
            c->len = 0;
        }
        size_t take = c->left < n ? c->left : n;
        if (c->sampler && c->opcode == 3) append(c, (const char *)d, take);
        d += take;
        n -= take;
        c->left -= take;
        if (c->left == 0) {
            c->in_payload = 0;
            if (c->opcode == 9 && !c->ready) { /* SUBACK */
                c->ready = 1;
                ready_count++;
                c->t_snapshot = mono_ns();
                if (nsnap < (int)(sizeof snap_ms / sizeof snap_ms[0]))
                    snap_ms[nsnap++] = (c->t_snapshot - c->t_connect) / 1e6;
            } else if (c->opcode == 3) {
                if (measuring) m_frames++;
                if (c->sampler && measuring && c->len > 2) {
                    size_t tl = ((uint8_t)c->buf[0] << 8) | (uint8_t)c->buf[1];
                    if (tl + 2 <= c->len) {
                        const char *topic = c->buf + 2;
                        const char *slash = memchr(topic, '/', tl);
                        int slot = slash ? id_number(slash + 1, topic + tl) : -1;
                        if (slot >= 0) sample_payload(topic + tl, c->len - 2 - tl, now, slot);
                    }
                }
            }
        }
    }
}

static void on_handshake_data(conn_t *c, const char *d, size_t n, int64_t now) {
    append(c, d, n);
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) {
        if (c->len > 8192) close_conn(c);
        return;
    }
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
        if (!c->probe) failed++;
        close_conn(c);
        return;
    }
    c->deflate = memmem(c->buf, head, "permessage-deflate", 18) != NULL;
    if (c->deflate && !c->probe) deflated++;
    size_t rest = c->len - head;
    char tmp[4096];
    if (rest > sizeof tmp) rest = sizeof tmp;
    memcpy(tmp, c->buf + head, rest);
    c->len = 0;
    c->state = ST_OPEN;
    if (!c->probe) opened++;
    c->t_sub = mono_ns();
    ws_send(c, 0x1, o_sub, strlen(o_sub));
    if (raw_mode && !c->probe && !c->ready) {
        c->ready = 1;
        ready_count++;
    }
    if (rest) ws_feed(c, (const uint8_t *)tmp, rest, now);
}

static void on_readable(conn_t *c) {
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
        close_conn(c);
        return;
    }
    int64_t now = now_ns();
    if (measuring && !c->probe) m_bytes += r;
    if (c->state == ST_HANDSHAKE && !mqtt_mode) {
        on_handshake_data(c, rbuf, r, now);
        return;
    }
    if (c->state == ST_HANDSHAKE && mqtt_mode) {
        c->state = ST_OPEN;
        opened++;
    }
    if (mqtt_mode)
        mqtt_feed(c, (const uint8_t *)rbuf, r, now);
    else
        ws_feed(c, (const uint8_t *)rbuf, r, now);
}

static void on_writable(conn_t *c) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        if (!c->probe) failed++;
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->state = ST_CLOSED;
        return;
    }
    send_handshake(c);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double rusage_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void print_ready(double ramp_s) {
    qsort(snap_ms, nsnap, sizeof(double), cmp_d);
    double p50 = nsnap ? snap_ms[nsnap / 2] : -1, mx = nsnap ? snap_ms[nsnap - 1] : -1;
    printf("READY {\"opened\":%d,\"ready\":%d,\"failed\":%d,\"closed\":%d,\"ramp_s\":%.3f,"
           "\"ramp_snapshot_ms_p50\":%.3f,\"ramp_snapshot_ms_max\":%.3f,\"deflated\":%d}\n",
           opened, ready_count, failed, ramp_closed, ramp_s, p50, mx, deflated);
    fflush(stdout);
}

static void print_result(void) {
    double secs = (mono_ns() - m_start_mono) / 1e9;
    int open_now = 0;
    for (int i = 0; i < o_conns; i++) open_now += conns[i].state == ST_OPEN;
    if (o_latfile[0]) {
        FILE *f = fopen(o_latfile, "wb");
        if (f) {
            fwrite(samples, sizeof(int32_t), nsamples, f);
            fclose(f);
        }
        char gw[1024];
        snprintf(gw, sizeof gw, "%s.gw", o_latfile);
        f = fopen(gw, "wb");
        if (f) {
            fwrite(gw_samples, sizeof(int32_t), ngw_samples, f);
            fclose(f);
        }
        snprintf(gw, sizeof gw, "%s.in", o_latfile);
        f = fopen(gw, "wb");
        if (f) {
            fwrite(in_samples, sizeof(int32_t), nin_samples, f);
            fclose(f);
        }
    }
    printf("RESULT {\"seconds\":%.4f,\"conns\":%d,\"open\":%d,\"closed\":%lld,\"frames\":%lld,"
           "\"bytes\":%lld,\"pings\":%lld,\"samples\":%zu,\"cpu_s\":%.4f,\"probes\":[",
           secs, o_conns, open_now, (long long)m_closed, (long long)m_frames,
           (long long)m_bytes, (long long)m_pings, nsamples, rusage_cpu());
    for (int i = 0; i < nprobe_results; i++)
        printf("%s[%.3f,%.3f]", i ? "," : "", probe_results[i][0] / 1e6,
               probe_results[i][1] / 1e6);
    printf("]}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--mode")) o_mode = v;
        else if (!strcmp(k, "--host")) o_host = v;
        else if (!strcmp(k, "--port")) o_port = atoi(v);
        else if (!strcmp(k, "--path")) o_path = v;
        else if (!strcmp(k, "--conns")) o_conns = atoi(v);
        else if (!strcmp(k, "--sub")) o_sub = v;
        else if (!strcmp(k, "--topic")) o_topic = v;
        else if (!strcmp(k, "--expect")) o_expect = v;
        else if (!strcmp(k, "--publog")) o_publog = v;
        else if (!strcmp(k, "--latfile")) o_latfile = v;
        else if (!strcmp(k, "--src")) o_src = v;
        else if (!strcmp(k, "--sample-every")) o_sample_every = atoi(v);
        else if (!strcmp(k, "--probes")) o_probes = atoi(v);
        else if (!strcmp(k, "--deflate")) o_deflate = atoi(v);
        else if (!strcmp(k, "--inflight")) o_inflight = atoi(v);
        else if (!strcmp(k, "--browser")) o_browser = atoi(v);
        else if (!strcmp(k, "--seconds")) o_seconds = atof(v);
        else if (!strcmp(k, "--max-seconds")) o_max_seconds = atof(v);
        else if (!strcmp(k, "--ramp-timeout")) o_ramp_timeout = atof(v);
        else {
            fprintf(stderr, "unknown option %s\n", k);
            return 2;
        }
    }
    mqtt_mode = !strcmp(o_mode, "mqtt");
    raw_mode = mqtt_mode || !strcmp(o_expect, "raw");
    if (o_probes > 200) o_probes = 200;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    char srcbuf[1024];
    snprintf(srcbuf, sizeof srcbuf, "%s", o_src);
    for (char *t = strtok(srcbuf, ","); t && nsrc < 64; t = strtok(NULL, ","))
        inet_pton(AF_INET, t, &srcs[nsrc++]);
    publog = publog_open(o_publog);
    samples = malloc(cap_samples * sizeof(int32_t));
    gw_samples = malloc(cap_samples * sizeof(int32_t));
    in_samples = malloc(cap_samples * sizeof(int32_t));
    nconns_total = o_conns + o_probes;
    conns = calloc(nconns_total, sizeof(conn_t));
    epfd = epoll_create1(0);
    set_nonblock(0);
    conn_t ctl = {.fd = 0, .idx = -1};
    ep(EPOLL_CTL_ADD, &ctl, EPOLLIN);
    for (int i = 0; i < nconns_total; i++) {
        conns[i].idx = i;
        conns[i].state = ST_FREE;
        conns[i].sampler = i < o_conns ? (o_sample_every > 0 && i % o_sample_every == 0) : 0;
        conns[i].probe = i >= o_conns;
    }
    int64_t t0 = mono_ns();
    int next = 0, ready_printed = 0, next_probe = 0;
    char line[256];
    size_t linelen = 0;
    struct epoll_event evs[1024];
    for (;;) {
        int64_t t = mono_ns();
        if ((t - t0) / 1e9 > o_max_seconds) {
            fprintf(stderr, "loadgen: --max-seconds reached\n");
            if (measuring) print_result();
            return 2;
        }
        if (!ready_printed) {
            int pending = 0;
            for (int i = 0; i < next; i++) {
                conn_t *c = &conns[i];
                if (c->state == ST_CLOSED && !c->ready && c->tries < 20 && pending < o_inflight &&
                    t - c->t_connect > 250000000LL) {
                    c->tries++; /* refused or reset during the ramp: try again */
                    start_conn(c);
                }
                pending += (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE ||
                            (c->state == ST_OPEN && !c->ready));
            }
            while (next < o_conns && pending < o_inflight) {
                start_conn(&conns[next++]);
                pending++;
            }
            int settled = next == o_conns && pending == 0;
            if (settled)
                for (int i = 0; i < o_conns; i++)
                    if (conns[i].state == ST_CLOSED && !conns[i].ready && conns[i].tries < 20) settled = 0;
            if (settled || (t - t0) / 1e9 > o_ramp_timeout) {
                print_ready((t - t0) / 1e9);
                ready_printed = 1;
            }
        }
        if (measuring && next_probe < o_probes) {
            double at = (next_probe + 0.5) * o_seconds / o_probes;
            if ((t - m_start_mono) / 1e9 >= at) start_conn(&conns[o_conns + next_probe++]);
        }
        int n = epoll_wait(epfd, evs, 1024, 5);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == &ctl) {
                ssize_t r = read(0, line + linelen, sizeof line - 1 - linelen);
                if (r == 0) return 0;
                if (r < 0) continue;
                linelen += r;
                line[linelen] = 0;
                char *nl;
                while ((nl = strchr(line, '\n')) != NULL) {
                    *nl = 0;
                    if (!strcmp(line, "START")) {
                        measuring = 1;
                        m_start_mono = mono_ns();
                        m_frames = m_bytes = m_closed = 0;
                        nsamples = ngw_samples = nin_samples = 0;
                    } else if (!strcmp(line, "STOP")) {
                        print_result();
                        return 0;
                    }
                    memmove(line, nl + 1, strlen(nl + 1) + 1);
                    linelen = strlen(line);
                }
                continue;
            }
            if (c->state == ST_CONNECTING && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                on_writable(c);
            else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c);
        }
    }
}
