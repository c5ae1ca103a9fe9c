/* Shared bits of the benchmark's C programs: clocks, the publish log, a tiny JSON scanner. */
#ifndef SG_BENCH_COMMON_H
#define SG_BENCH_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The publish log: the publisher (bench/publisher.py) writes, for every message it publishes,
 * (seq, publish time in CLOCK_REALTIME ns) into ring[intersection number][seq % PUBLOG_RING].
 * Readers match a delivered view either by seq (raw relays, MQTT) or by the view's updated_ms
 * (the gateway's receive time: the newest publish at or before it produced the view). */
#define PUBLOG_SLOTS 1024
#define PUBLOG_RING 64
typedef struct {
    int64_t seq;
    int64_t pub_ns;
} publog_entry;
typedef struct {
    publog_entry ring[PUBLOG_SLOTS][PUBLOG_RING];
} publog_t;

static inline int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline publog_t *publog_open(const char *path) {
    if (path == NULL || path[0] == 0) return NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror("publog open");
        return NULL;
    }
    void *p = mmap(NULL, sizeof(publog_t), PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        perror("publog mmap");
        return NULL;
    }
    return (publog_t *)p;
}

/* Parse a non-negative integer at s (stops at the first non-digit); -1 if none. */
static inline int64_t scan_int(const char *s, const char *end) {
    int64_t v = 0;
    int any = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        v = v * 10 + (*s - '0');
        s++;
        any = 1;
    }
    return any ? v : -1;
}

/* The number of an intersection id like YT123 (digits after the letters); -1 if none. */
static inline int id_number(const char *s, const char *end) {
    while (s < end && *s != '"' && !(*s >= '0' && *s <= '9')) s++;
    int64_t v = scan_int(s, end);
    if (v < 0 || v >= PUBLOG_SLOTS) return -1;
    return (int)v;
}

/* Publish time of (slot, seq), or -1. */
static inline int64_t publog_by_seq(const publog_t *log, int slot, int64_t seq) {
    const publog_entry *e = &log->ring[slot][seq % PUBLOG_RING];
    return e->seq == seq ? e->pub_ns : -1;
}

/* Newest publish time of slot at or before limit_ns (and not older than 30 s before it). */
static inline int64_t publog_by_time(const publog_t *log, int slot, int64_t limit_ns) {
    int64_t best = -1;
    for (int i = 0; i < PUBLOG_RING; i++) {
        int64_t t = log->ring[slot][i].pub_ns;
        if (t > 0 && t <= limit_ns && t > best && limit_ns - t < 30000000000LL) best = t;
    }
    return best;
}

static inline const char *find(const char *hay, const char *end, const char *needle) {
    size_t n = strlen(needle);
    if (hay >= end) return NULL;
    return memmem(hay, (size_t)(end - hay), needle, n);
}

#endif
