/*
 * ingest.h - the bounded queue between connector threads and the main loop.
 *
 * Many producers (Modbus poller threads, the MQTT client thread) push
 * batches of samples; the main loop is the only consumer. The queue has a
 * fixed capacity: when it is full, new samples are refused and counted
 * (the producer's data is newer than what waits, but dropping the oldest
 * would reorder what the store already promised). An eventfd wakes the loop.
 */
#ifndef PDM_INGEST_H
#define PDM_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "sample.h"

struct ingest;

/* capacity: samples the queue holds. NULL on allocation failure. */
struct ingest *ingest_new(size_t capacity);
void ingest_free(struct ingest *q);

/* Readable when samples are waiting; poll it from the main loop. */
int ingest_fd(const struct ingest *q);

/* Thread-safe. Pushes as many of the n samples as fit; returns the number
 * pushed (the rest are counted as dropped). */
size_t ingest_push(struct ingest *q, const struct pdm_sample *s, size_t n);

/* Consumer only: copies up to max samples out, oldest first; clears the
 * eventfd when the queue becomes empty. Returns the count. */
size_t ingest_pop(struct ingest *q, struct pdm_sample *out, size_t max);

/* A pdm_sample_cb that pushes into the queue passed as `user`. */
void ingest_sample_cb(const struct pdm_sample *s, size_t n, void *user);

struct ingest_stats {
	uint64_t pushed, dropped;
	size_t len, capacity, high_water;
};
void ingest_stats(struct ingest *q, struct ingest_stats *st);

#endif
