/*
 * ingest.c - bounded multi-producer, single-consumer sample queue.
 *
 * A mutex-protected ring is plenty: producers push batches (one poll's
 * worth), so the lock is taken a few hundred times a second, not per
 * sample.
 */
#include "ingest.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

struct ingest {
	pthread_mutex_t lock;
	struct pdm_sample *ring;
	size_t cap, head, len, high_water;
	uint64_t pushed, dropped;
	int efd;
	bool signalled;
	struct pdm_ratelimit rl;
};

struct ingest *ingest_new(size_t capacity)
{
	struct ingest *q = calloc(1, sizeof(*q));

	if (!q || capacity == 0)
		goto fail;
	q->ring = calloc(capacity, sizeof(*q->ring));
	if (!q->ring)
		goto fail;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (q->efd < 0)
		goto fail;
	q->cap = capacity;
	q->rl = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(10000, 1);
	pthread_mutex_init(&q->lock, NULL);
	return q;
fail:
	if (q)
		free(q->ring);
	free(q);
	return NULL;
}

void ingest_free(struct ingest *q)
{
	if (!q)
		return;
	close(q->efd);
	pthread_mutex_destroy(&q->lock);
	free(q->ring);
	free(q);
}

int ingest_fd(const struct ingest *q)
{
	return q->efd;
}

size_t ingest_push(struct ingest *q, const struct pdm_sample *s, size_t n)
{
	size_t taken, dropped;
	bool wake = false;

	pthread_mutex_lock(&q->lock);
	taken = q->cap - q->len < n ? q->cap - q->len : n;
	for (size_t i = 0; i < taken; i++)
		q->ring[(q->head + q->len + i) % q->cap] = s[i];
	q->len += taken;
	if (q->len > q->high_water)
		q->high_water = q->len;
	q->pushed += taken;
	dropped = n - taken;
	q->dropped += dropped;
	if (taken > 0 && !q->signalled) {
		q->signalled = true;
		wake = true;
	}
	if (dropped > 0)
		LOG_RL(&q->rl, LOG_WARNING,
		       "ingest: queue full (%zu samples), %llu samples dropped so far; the store "
		       "or the main loop cannot keep up",
		       q->cap, (unsigned long long)q->dropped);
	pthread_mutex_unlock(&q->lock);
	if (wake) {
		uint64_t one = 1;
		ssize_t w = write(q->efd, &one, sizeof(one));
		(void)w; /* EAGAIN only if the counter is saturated: already readable */
	}
	return taken;
}

size_t ingest_pop(struct ingest *q, struct pdm_sample *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->len < max ? q->len : max;
	for (size_t i = 0; i < n; i++)
		out[i] = q->ring[(q->head + i) % q->cap];
	q->head = (q->head + n) % q->cap;
	q->len -= n;
	if (q->len == 0 && q->signalled) {
		uint64_t v;
		ssize_t r = read(q->efd, &v, sizeof(v));
		(void)r;
		q->signalled = false;
	}
	pthread_mutex_unlock(&q->lock);
	return n;
}

void ingest_sample_cb(const struct pdm_sample *s, size_t n, void *user)
{
	ingest_push(user, s, n);
}

void ingest_stats(struct ingest *q, struct ingest_stats *st)
{
	pthread_mutex_lock(&q->lock);
	st->pushed = q->pushed;
	st->dropped = q->dropped;
	st->len = q->len;
	st->capacity = q->cap;
	st->high_water = q->high_water;
	pthread_mutex_unlock(&q->lock);
}
