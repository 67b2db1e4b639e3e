/*
 * mb_conn.c - Modbus TCP/RTU poller: one thread per connection.
 *
 * Design constraints:
 * - A connection is either a TCP peer or a serial bus. Several unit ids
 *   (groups) may share it; they are polled by the same thread because a
 *   serial bus carries one transaction at a time.
 * - Each group keeps an absolute deadline on CLOCK_MONOTONIC
 *   (next += interval, clamped to now when late, so a slow poll never
 *   causes a burst of catch-up polls); an overrun is logged, rate-limited.
 * - libmodbus's own error recovery stays off: this thread owns the retry
 *   policy (exponential backoff with jitter up to a cap, reset on success).
 *   On TCP any transport failure closes the socket, because a late answer
 *   would otherwise be read as the answer to the next request. On a serial
 *   bus a timeout or a garbled frame is blamed on that unit only: the unit
 *   backs off, the bus stays open for the others.
 * - An exception response is a valid answer: only the sensors of that
 *   request are stale, the connection stays up.
 * - While a group cannot be read, its sensors are reported PDM_Q_STALE once
 *   per missed poll, so the daemon can tell "no data" from "old data".
 * - Requests are planned once at construction: points sorted by kind and
 *   address, merged while the span stays within max_regs/max_bits and the
 *   hole between two points is at most max_gap registers. A merged read
 *   refused with "illegal data address" (an unmapped hole) is split into
 *   one read per point for the rest of the run.
 */
#include "mb_conn.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <modbus.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "pdm_error.h"
#include "pdm_parse.h"
#include "pdm_time.h"

#define MB_DEF_MAX_REGS 125
#define MB_DEF_MAX_BITS 2000
#define MB_DEF_MAX_GAP 8
#define MB_DEF_BACKOFF_MIN 100
#define MB_DEF_BACKOFF_MAX 30000
#define MB_DEF_TIMEOUT 1000

struct mb_req {
	enum mb_kind kind;
	uint16_t addr;
	uint16_t count;  /* registers or bits */
	size_t first, n; /* slice of grp.idx */
	bool split;      /* refused as a whole: read point by point */
};

struct grp {
	char *name;
	int unit_id;
	int64_t poll_ms, timeout_ms;
	struct mb_point *points;
	size_t n_points;
	size_t *idx; /* point indices sorted by kind, address */
	struct mb_req *reqs;
	size_t n_reqs;
	struct pdm_sample *out; /* one per point, in idx order */

	int64_t next_ms;    /* monotonic deadline of the next poll */
	int64_t retry_ms;   /* serial unit backing off until then; 0 = not */
	int64_t backoff_ms; /* serial unit's next backoff */

	struct mb_stats st; /* under mb_conn.lock */
	uint64_t lat_n;
	double lat_sum;

	struct pdm_ratelimit rl_err, rl_overrun;
};

struct mb_conn {
	char *name, *host, *device;
	enum mb_transport transport;
	int port, baud, data_bits, stop_bits;
	char parity;
	int max_regs, max_bits, max_gap;
	int64_t backoff_min_ms, backoff_max_ms;
	struct grp *g;
	size_t n_g;
	pdm_sample_cb cb;
	void *user;

	/* Owned by the thread while it runs. */
	modbus_t *ctx;
	bool connected, ever_connected;
	int64_t backoff_ms, retry_ms;
	unsigned seed;
	uint16_t regs[MODBUS_MAX_READ_REGISTERS];
	uint8_t bits[MODBUS_MAX_READ_BITS];
	struct pdm_ratelimit rl_conn;

	pthread_t thread;
	bool running;
	atomic_bool stop;
	pthread_mutex_t lock; /* stats, connected flag, stop wakeups */
	pthread_cond_t cond;
};

static const char *const kind_names[] = {
	[MB_K_HR] = "hr", [MB_K_IR] = "ir", [MB_K_COIL] = "coil", [MB_K_DI] = "di",
};

int mb_kind_parse(const char *s, enum mb_kind *k)
{
	if (!s || !k)
		return -EINVAL;
	for (int i = 0; i <= MB_K_DI; i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			*k = (enum mb_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

int mb_register_parse(const char *s, enum mb_kind *k, uint16_t *addr)
{
	char kind[8];
	const char *colon = s ? strchr(s, ':') : NULL;
	int64_t a;

	if (!colon || !k || !addr || (size_t)(colon - s) >= sizeof(kind))
		return -EINVAL;
	memcpy(kind, s, (size_t)(colon - s));
	kind[colon - s] = '\0';
	if (mb_kind_parse(kind, k) < 0)
		return -EINVAL;
	const char *num = colon + 1;
	if (num[0] == '0' && (num[1] == 'x' || num[1] == 'X')) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(num + 2, &end, 16);
		if (!num[2] || *end || errno || num[2] == '-' || num[2] == '+')
			return -EINVAL;
		if (v > 65535)
			return -ERANGE;
		a = (int64_t)v;
	} else {
		int rc = pdm_parse_i64(num, 0, 65535, &a);
		if (rc < 0)
			return rc;
	}
	*addr = (uint16_t)a;
	return 0;
}

const char *mb_kind_name(enum mb_kind k)
{
	return (unsigned)k <= MB_K_DI ? kind_names[k] : "?";
}

const char *mb_exception_name(int code)
{
	static const char *const names[] = {
		[1] = "illegal function",
		[2] = "illegal data address",
		[3] = "illegal data value",
		[4] = "server device failure",
		[5] = "acknowledge",
		[6] = "server device busy",
		[7] = "negative acknowledge",
		[8] = "memory parity error",
		[10] = "gateway path unavailable",
		[11] = "gateway target device failed to respond",
	};

	if (code > 0 && code < (int)(sizeof(names) / sizeof(names[0])) && names[code])
		return names[code];
	return "unknown exception";
}

static bool kind_is_bit(enum mb_kind k)
{
	return k == MB_K_COIL || k == MB_K_DI;
}

static int point_width(const struct mb_point *p)
{
	return kind_is_bit(p->kind) ? 1 : mb_type_words(p->type);
}

/* Exception code carried by a libmodbus errno, or 0 if it is not one. */
static int errno_exception(int e)
{
	if (e >= EMBXILFUN && e <= EMBXGTAR)
		return e - MODBUS_ENOBASE;
	if (e == EMBBADEXC)
		return -1;
	return 0;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- configuration ---------------------------------------------------- */

static int check_point(const char *conn, const struct mb_point *p, int max_regs)
{
	const char *pn = p->name ? p->name : "?";

	if ((unsigned)p->kind > MB_K_DI || (unsigned)p->type > MB_T_BOOL ||
	    (unsigned)p->order > MB_O_DCBA) {
		LOG_E("modbus[%s]: sensor %s: invalid kind, type or order", conn, pn);
		return -EINVAL;
	}
	if (kind_is_bit(p->kind) && p->type != MB_T_BOOL) {
		LOG_E("modbus[%s]: sensor %s: %s holds single bits; use type bool", conn, pn,
		      mb_kind_name(p->kind));
		return -EINVAL;
	}
	if ((long)p->address + point_width(p) - 1 > 65535) {
		LOG_E("modbus[%s]: sensor %s: %s %s at %u runs past address 65535", conn, pn,
		      mb_type_name(p->type), mb_kind_name(p->kind), p->address);
		return -EINVAL;
	}
	if (!kind_is_bit(p->kind) && point_width(p) > max_regs) {
		LOG_E("modbus[%s]: sensor %s: %s needs %d registers but max_regs is %d", conn,
		      pn, mb_type_name(p->type), point_width(p), max_regs);
		return -EINVAL;
	}
	if (p->has_bit && (kind_is_bit(p->kind) || !mb_type_is_integer(p->type) ||
			   p->bit >= 16 * mb_type_words(p->type))) {
		LOG_E("modbus[%s]: sensor %s: bit %u of a %s %s: bits are of integer register values, "
		      "16 per register", conn, pn, p->bit, mb_type_name(p->type),
		      mb_kind_name(p->kind));
		return -EINVAL;
	}
	if (!isfinite(p->scale) || p->scale == 0.0 || !isfinite(p->offset)) {
		LOG_E("modbus[%s]: sensor %s: scale must be a nonzero number and offset finite",
		      conn, pn);
		return -EINVAL;
	}
	if (p->has_min && p->has_max && p->valid_min > p->valid_max) {
		LOG_E("modbus[%s]: sensor %s: valid_min is above valid_max", conn, pn);
		return -EINVAL;
	}
	return 0;
}

static int check_cfg(const struct mb_conn_cfg *cfg, int max_regs)
{
	const char *n = cfg->name ? cfg->name : "?";

	if (cfg->transport == MB_TCP) {
		if (!cfg->host || !*cfg->host || cfg->port < 1 || cfg->port > 65535) {
			LOG_E("modbus[%s]: TCP needs a host and a port in 1..65535", n);
			return -EINVAL;
		}
	} else if (cfg->transport == MB_RTU) {
		if (!cfg->device || !*cfg->device || cfg->baud <= 0) {
			LOG_E("modbus[%s]: RTU needs a device and a baud rate", n);
			return -EINVAL;
		}
		if (cfg->parity != 'N' && cfg->parity != 'E' && cfg->parity != 'O') {
			LOG_E("modbus[%s]: parity must be N, E or O", n);
			return -EINVAL;
		}
		if (cfg->data_bits < 5 || cfg->data_bits > 8 || cfg->stop_bits < 1 ||
		    cfg->stop_bits > 2) {
			LOG_E("modbus[%s]: data_bits must be 5..8 and stop_bits 1..2", n);
			return -EINVAL;
		}
	} else {
		LOG_E("modbus[%s]: unknown transport", n);
		return -EINVAL;
	}
	if (cfg->max_regs < 0 || cfg->max_regs > MODBUS_MAX_READ_REGISTERS ||
	    cfg->max_bits < 0 || cfg->max_bits > MODBUS_MAX_READ_BITS || cfg->max_gap < -1 ||
	    cfg->max_gap > MODBUS_MAX_READ_REGISTERS) {
		LOG_E("modbus[%s]: max_regs must be 1..125, max_bits 1..2000, max_gap 0..125", n);
		return -EINVAL;
	}
	if (cfg->backoff_min_ms < 0 || cfg->backoff_max_ms < 0 ||
	    (cfg->backoff_max_ms && cfg->backoff_min_ms > cfg->backoff_max_ms)) {
		LOG_E("modbus[%s]: backoff limits must be positive, minimum <= maximum", n);
		return -EINVAL;
	}
	if (!cfg->groups || cfg->n_groups == 0) {
		LOG_E("modbus[%s]: no unit to poll", n);
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->n_groups; i++) {
		const struct mb_group *g = &cfg->groups[i];
		int lo = cfg->transport == MB_RTU ? 1 : 0;
		int hi = cfg->transport == MB_RTU ? 247 : 255;

		if (g->unit_id < lo || g->unit_id > hi) {
			LOG_E("modbus[%s]: unit id %d out of range %d..%d", n, g->unit_id, lo, hi);
			return -EINVAL;
		}
		if (g->poll_ms < 0 || g->timeout_ms < 0) {
			LOG_E("modbus[%s]: poll interval and timeout must not be negative", n);
			return -EINVAL;
		}
		if (!g->points || g->n_points == 0) {
			LOG_E("modbus[%s]: unit %d has no sensors", n, g->unit_id);
			return -EINVAL;
		}
		for (size_t j = 0; j < g->n_points; j++) {
			if (check_point(n, &g->points[j], max_regs) < 0)
				return -EINVAL;
		}
	}
	return 0;
}

static bool point_before(const struct mb_point *x, const struct mb_point *y)
{
	return x->kind != y->kind ? x->kind < y->kind : x->address < y->address;
}

/* Sorts the points and merges neighbours into requests. Bits are cheap
 * (2000 fit in one reply), so the allowed hole for them is 16 bits per
 * register of max_gap. */
static int plan_group(struct grp *g, int max_regs, int max_bits, int max_gap)
{
	g->idx = calloc(g->n_points, sizeof(*g->idx));
	g->reqs = calloc(g->n_points, sizeof(*g->reqs));
	if (!g->idx || !g->reqs)
		return -ENOMEM;
	/* Stable insertion sort: runs once per configuration, and C11 qsort
	 * has no context argument to reach the points. */
	for (size_t i = 0; i < g->n_points; i++) {
		size_t j = i;
		while (j > 0 && point_before(&g->points[i], &g->points[g->idx[j - 1]])) {
			g->idx[j] = g->idx[j - 1];
			j--;
		}
		g->idx[j] = i;
	}

	struct mb_req *cur = NULL;
	long cur_hi = 0;

	for (size_t i = 0; i < g->n_points; i++) {
		const struct mb_point *p = &g->points[g->idx[i]];
		bool bit = kind_is_bit(p->kind);
		long lo = p->address, hi = lo + point_width(p) - 1;
		long limit = bit ? max_bits : max_regs;
		long gap = bit ? (long)max_gap * 16 : max_gap;

		if (cur && cur->kind == p->kind && lo <= cur_hi + 1 + gap &&
		    (hi > cur_hi ? hi : cur_hi) - cur->addr + 1 <= limit) {
			if (hi > cur_hi)
				cur_hi = hi;
			cur->count = (uint16_t)(cur_hi - cur->addr + 1);
			cur->n++;
			continue;
		}
		cur = &g->reqs[g->n_reqs++];
		cur->kind = p->kind;
		cur->addr = (uint16_t)lo;
		cur_hi = hi;
		cur->count = (uint16_t)(hi - lo + 1);
		cur->first = i;
		cur->n = 1;
	}
	return 0;
}

static void grp_cleanup(struct grp *g)
{
	if (g->points) {
		for (size_t i = 0; i < g->n_points; i++)
			free((char *)g->points[i].name);
	}
	free(g->points);
	free(g->idx);
	free(g->reqs);
	free(g->out);
	free(g->name);
}

static modbus_t *new_ctx(const char *name, enum mb_transport t, const char *host, int port,
			 const char *device, int baud, char parity, int data_bits, int stop_bits)
{
	modbus_t *ctx;

	if (t == MB_TCP) {
		char svc[16];
		snprintf(svc, sizeof(svc), "%d", port);
		ctx = modbus_new_tcp_pi(host, svc);
	} else {
		ctx = modbus_new_rtu(device, baud, parity, data_bits, stop_bits);
	}
	if (!ctx) {
		LOG_E("modbus[%s]: cannot create a %s context: %s", name,
		      t == MB_TCP ? "TCP" : "RTU", modbus_strerror(errno));
		return NULL;
	}
	/* The retry policy is ours: libmodbus must not reconnect or sleep. */
	modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
	return ctx;
}

struct mb_conn *mb_conn_new(const struct mb_conn_cfg *cfg, pdm_sample_cb cb, void *user)
{
	if (!cfg || !cb)
		return NULL;
	int max_regs = cfg->max_regs ? cfg->max_regs : MB_DEF_MAX_REGS;
	if (check_cfg(cfg, max_regs) < 0)
		return NULL;

	struct mb_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->name = xstrdup(cfg->name ? cfg->name : "modbus");
	c->host = xstrdup(cfg->host);
	c->device = xstrdup(cfg->device);
	c->transport = cfg->transport;
	c->port = cfg->port;
	c->baud = cfg->baud;
	c->parity = cfg->parity;
	c->data_bits = cfg->data_bits;
	c->stop_bits = cfg->stop_bits;
	c->max_regs = max_regs;
	c->max_bits = cfg->max_bits ? cfg->max_bits : MB_DEF_MAX_BITS;
	c->max_gap = cfg->max_gap == 0 ? MB_DEF_MAX_GAP : cfg->max_gap < 0 ? 0 : cfg->max_gap;
	c->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : MB_DEF_BACKOFF_MIN;
	c->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : MB_DEF_BACKOFF_MAX;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	c->backoff_ms = c->backoff_min_ms;
	c->cb = cb;
	c->user = user;
	c->seed = (unsigned)(pdm_mono_us() ^ (uintptr_t)c);
	c->rl_conn = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(60000, 5);
	atomic_init(&c->stop, false);
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!c->name || (cfg->host && !c->host) || (cfg->device && !c->device))
		goto fail;

	c->g = calloc(cfg->n_groups, sizeof(*c->g));
	if (!c->g)
		goto fail;
	c->n_g = cfg->n_groups;
	for (size_t i = 0; i < c->n_g; i++) {
		const struct mb_group *src = &cfg->groups[i];
		struct grp *g = &c->g[i];

		g->name = xstrdup(src->name ? src->name : c->name);
		g->unit_id = src->unit_id;
		g->poll_ms = src->poll_ms;
		g->timeout_ms = src->timeout_ms ? src->timeout_ms : MB_DEF_TIMEOUT;
		g->n_points = src->n_points;
		g->points = calloc(src->n_points, sizeof(*g->points));
		g->out = calloc(src->n_points, sizeof(*g->out));
		if (!g->name || !g->points || !g->out)
			goto fail;
		for (size_t j = 0; j < src->n_points; j++) {
			g->points[j] = src->points[j];
			g->points[j].name = NULL;
			if (src->points[j].name && !(g->points[j].name = strdup(src->points[j].name)))
				goto fail;
		}
		if (plan_group(g, c->max_regs, c->max_bits, c->max_gap) < 0)
			goto fail;
		g->backoff_ms = c->backoff_min_ms;
		g->rl_err = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(60000, 5);
		g->rl_overrun = (struct pdm_ratelimit)PDM_RATELIMIT_INIT(60000, 1);
	}
	c->ctx = new_ctx(c->name, c->transport, c->host, c->port, c->device, c->baud, c->parity,
			 c->data_bits, c->stop_bits);
	if (!c->ctx)
		goto fail;
	return c;
fail:
	mb_conn_free(c);
	return NULL;
}

int mb_conn_requests_per_poll(const struct mb_conn *c, size_t group)
{
	if (!c || group >= c->n_g)
		return -EINVAL;
	return (int)c->g[group].n_reqs;
}

/* ---- the polling thread ----------------------------------------------- */

/* A delay in [b/2, b]: spreads reconnects of many pollers after a shared
 * outage (a switch reboot) so they do not hit the network together. */
static int64_t jittered(struct mb_conn *c, int64_t b)
{
	int64_t half = b / 2;

	return half + (half > 0 ? (int64_t)(rand_r(&c->seed) % (half + 1)) : 0);
}

static int64_t next_backoff(const struct mb_conn *c, int64_t b)
{
	return b >= c->backoff_max_ms / 2 ? c->backoff_max_ms : b * 2;
}

static void set_timeout(modbus_t *ctx, int64_t ms)
{
	modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
	/* Between the bytes of one answer: a healthy peer never pauses long. */
	modbus_set_byte_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
}

static void disconnect(struct mb_conn *c, const char *why)
{
	int64_t delay = jittered(c, c->backoff_ms);

	modbus_close(c->ctx);
	c->connected = false;
	c->retry_ms = pdm_mono_ms() + delay;
	c->backoff_ms = next_backoff(c, c->backoff_ms);
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_g; i++)
		c->g[i].st.connected = false;
	pthread_mutex_unlock(&c->lock);
	LOG_RL(&c->rl_conn, LOG_WARNING,
	       "modbus[%s]: %s; sensors stale, retrying in %" PRId64 " ms", c->name, why, delay);
}

static void try_connect(struct mb_conn *c)
{
	int64_t to = 0;

	for (size_t i = 0; i < c->n_g; i++)
		if (c->g[i].timeout_ms > to)
			to = c->g[i].timeout_ms;
	set_timeout(c->ctx, to);
	if (modbus_connect(c->ctx) < 0) {
		char why[256];
		int e = errno;

		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < c->n_g; i++) {
			c->g[i].st.errors++;
			if (e == ETIMEDOUT)
				c->g[i].st.timeouts++;
		}
		pthread_mutex_unlock(&c->lock);
		if (c->transport == MB_TCP)
			snprintf(why, sizeof(why), "cannot connect to %s:%d: %s", c->host, c->port,
				 modbus_strerror(e));
		else
			snprintf(why, sizeof(why), "cannot open %s: %s", c->device,
				 modbus_strerror(e));
		disconnect(c, why);
		return;
	}
	if (c->transport == MB_RTU)
		modbus_flush(c->ctx);
	/* The backoff is reset by the first answer, not here: a frozen device
	 * still accepts TCP connections and must not be hammered. */
	c->connected = true;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_g; i++) {
		c->g[i].st.connected = true;
		if (c->ever_connected)
			c->g[i].st.reconnects++;
	}
	pthread_mutex_unlock(&c->lock);
	/* A device that accepts TCP but never answers reconnects at every
	 * backoff step, for days: the line shares the connection's limit. */
	if (c->ever_connected)
		LOG_RL(&c->rl_conn, LOG_INFO, "modbus[%s]: reconnected", c->name);
	else
		LOG_D("modbus[%s]: connected", c->name);
	c->ever_connected = true;
}

static void emit(struct mb_conn *c, struct grp *g)
{
	c->cb(g->out, g->n_points, c->user);
}

static void fill_stale(struct grp *g, size_t first, size_t n, int64_t ts)
{
	for (size_t i = first; i < first + n; i++) {
		g->out[i].sensor = g->points[g->idx[i]].sensor;
		g->out[i].ts_ms = ts;
		g->out[i].value = NAN;
		g->out[i].quality = PDM_Q_STALE;
	}
}

static int do_read(modbus_t *ctx, const struct mb_req *r, uint16_t *regs, uint8_t *bits)
{
	switch (r->kind) {
	case MB_K_HR:
		return modbus_read_registers(ctx, r->addr, r->count, regs);
	case MB_K_IR:
		return modbus_read_input_registers(ctx, r->addr, r->count, regs);
	case MB_K_COIL:
		return modbus_read_bits(ctx, r->addr, r->count, bits);
	case MB_K_DI:
		return modbus_read_input_bits(ctx, r->addr, r->count, bits);
	}
	errno = EINVAL;
	return -1;
}

static double point_value(const struct mb_point *p, const uint16_t *regs, const uint8_t *bits,
			  uint16_t base, uint8_t *quality)
{
	double raw;

	if (kind_is_bit(p->kind))
		raw = bits[p->address - base] ? 1.0 : 0.0;
	else if (p->has_bit)
		raw = (double)((mb_decode_bits(regs + (p->address - base), p->type, p->order) >>
				p->bit) & 1u);
	else
		mb_decode(regs + (p->address - base), p->type, p->order, &raw);
	double v = raw * p->scale + p->offset;

	if (!isfinite(v) || (p->has_min && v < p->valid_min) || (p->has_max && v > p->valid_max))
		*quality = PDM_Q_BAD;
	else
		*quality = PDM_Q_GOOD;
	return v;
}

static void fill_values(struct mb_conn *c, struct grp *g, const struct mb_req *r, int64_t ts)
{
	for (size_t i = r->first; i < r->first + r->n; i++) {
		const struct mb_point *p = &g->points[g->idx[i]];

		g->out[i].sensor = p->sensor;
		g->out[i].ts_ms = ts;
		g->out[i].value = point_value(p, c->regs, c->bits, r->addr, &g->out[i].quality);
	}
}

/* Is this failure the unit's fault (the bus is fine) rather than the link's? */
static bool unit_level_failure(int e)
{
	return e == ETIMEDOUT || e == EMBBADCRC || e == EMBBADDATA || e == EMBBADSLAVE ||
	       e == EMBMDATA;
}

/* A transport failure during a read: the unit (serial) or the link (TCP,
 * or a serial port that failed) backs off. */
static void read_failed(struct mb_conn *c, struct grp *g, const char *why, int e)
{
	if (c->transport == MB_RTU && unit_level_failure(e)) {
		int64_t delay = jittered(c, g->backoff_ms);

		/* Drop the rest of a garbled or late frame before the next unit. */
		modbus_flush(c->ctx);
		g->retry_ms = pdm_mono_ms() + delay;
		g->backoff_ms = next_backoff(c, g->backoff_ms);
		LOG_RL(&g->rl_err, LOG_WARNING,
		       "modbus[%s]: %s; unit stale, retrying in %" PRId64 " ms", g->name, why, delay);
	} else {
		disconnect(c, why);
	}
}

/*
 * One request on the wire for points [first, first + n) (idx order) of g.
 * Fills their samples and the counters. Returns 0 for data, the exception
 * code (> 0) for an exception answer, or -1 after a transport failure, in
 * which case every point from `first` on is stale and the failure handled.
 */
static int read_span(struct mb_conn *c, struct grp *g, enum mb_kind kind, uint16_t addr,
		     uint16_t count, size_t first, size_t n, bool log_exc)
{
	struct mb_req r = { .kind = kind, .addr = addr, .count = count, .first = first, .n = n };
	int rc = do_read(c->ctx, &r, c->regs, c->bits);
	int e = errno;
	int64_t ts = pdm_wall_ms();

	if (rc == count) {
		c->backoff_ms = c->backoff_min_ms;
		fill_values(c, g, &r, ts);
		pthread_mutex_lock(&c->lock);
		g->st.requests++;
		g->st.last_success_ms = ts;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (rc >= 0)
		e = EMBBADDATA;
	int exc = errno_exception(e);

	pthread_mutex_lock(&c->lock);
	g->st.requests++;
	g->st.errors++;
	if (exc) {
		g->st.exceptions++;
		g->st.exc_by_code[exc > 0 && exc < 12 ? exc : 0]++;
	}
	if (e == ETIMEDOUT)
		g->st.timeouts++;
	pthread_mutex_unlock(&c->lock);

	if (exc) {
		fill_stale(g, first, n, ts);
		c->backoff_ms = c->backoff_min_ms; /* the device answered */
		if (log_exc)
			LOG_RL(&g->rl_err, LOG_WARNING,
			       "modbus[%s]: unit %d read %s %u..%u: exception %d (%s); "
			       "its sensors are stale",
			       g->name, g->unit_id, mb_kind_name(kind), addr, addr + count - 1u, exc,
			       mb_exception_name(exc));
		return exc > 0 ? exc : 0xff;
	}

	char why[200];
	snprintf(why, sizeof(why), "unit %d read %s %u..%u failed: %s", g->unit_id,
		 mb_kind_name(kind), addr, addr + count - 1u, modbus_strerror(e));
	fill_stale(g, first, g->n_points - first, ts);
	read_failed(c, g, why, e);
	return -1;
}

/* Reads the points of a split request one request each. */
static int read_points(struct mb_conn *c, struct grp *g, const struct mb_req *r)
{
	for (size_t j = r->first; j < r->first + r->n; j++) {
		const struct mb_point *p = &g->points[g->idx[j]];

		if (read_span(c, g, p->kind, p->address, (uint16_t)point_width(p), j, 1, true) < 0)
			return -1;
	}
	return 0;
}

/* Reads one group once and emits one batch. */
static void poll_group(struct mb_conn *c, struct grp *g)
{
	int64_t t0 = pdm_mono_us();
	int rc = 0;

	modbus_set_slave(c->ctx, g->unit_id);
	set_timeout(c->ctx, g->timeout_ms);
	for (size_t i = 0; i < g->n_reqs && rc >= 0; i++) {
		struct mb_req *r = &g->reqs[i];

		if (r->split) {
			rc = read_points(c, g, r);
			continue;
		}
		rc = read_span(c, g, r->kind, r->addr, r->count, r->first, r->n, r->n == 1);
		if (rc == MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS && r->n > 1) {
			/* Many devices refuse reads that touch an unmapped
			 * register between two sensors. Read these one by one
			 * from now on, so only a truly bad address stays stale. */
			LOG_I("modbus[%s]: unit %d refused the merged read of %s %u..%u (illegal "
			      "data address); reading its %zu sensors one by one",
			      g->name, g->unit_id, mb_kind_name(r->kind), r->addr,
			      r->addr + r->count - 1u, r->n);
			r->split = true;
			rc = read_points(c, g, r);
		}
	}
	if (rc >= 0) {
		g->retry_ms = 0;
		g->backoff_ms = c->backoff_min_ms;
	}

	double lat = (double)(pdm_mono_us() - t0) / 1000.0;
	pthread_mutex_lock(&c->lock);
	g->lat_n++;
	g->lat_sum += lat;
	g->st.latency_last_ms = lat;
	g->st.latency_avg_ms = g->lat_sum / (double)g->lat_n;
	if (lat > g->st.latency_max_ms)
		g->st.latency_max_ms = lat;
	pthread_mutex_unlock(&c->lock);
	emit(c, g);
}

/* Runs a due group: a real poll, or stale samples while it cannot be read. */
static void run_group(struct mb_conn *c, struct grp *g)
{
	int64_t now = pdm_mono_ms();
	int64_t blocked_until = 0;

	if (!c->connected)
		blocked_until = c->retry_ms;
	else if (g->retry_ms && now < g->retry_ms)
		blocked_until = g->retry_ms;

	if (blocked_until) {
		fill_stale(g, 0, g->n_points, pdm_wall_ms());
		emit(c, g);
	} else {
		poll_group(c, g);
	}

	now = pdm_mono_ms();
	if (g->poll_ms == 0) {
		/* Back to back, but a blocked group waits for its retry time
		 * instead of spinning on stale samples. */
		g->next_ms = blocked_until > now ? blocked_until : now;
		return;
	}
	g->next_ms += g->poll_ms;
	if (g->next_ms < now) {
		/* A few ms of lateness on a shared bus is not worth a warning. */
		if (!blocked_until && now - g->next_ms > g->poll_ms / 4)
			LOG_RL(&g->rl_overrun, LOG_WARNING,
			       "modbus[%s]: poll overran its %" PRId64 " ms interval by %" PRId64
			       " ms; raise poll or timeout, or split the source",
			       g->name, g->poll_ms, now - g->next_ms);
		g->next_ms = now;
	}
}

static void *conn_thread(void *arg)
{
	struct mb_conn *c = arg;
	char tname[16];

	snprintf(tname, sizeof(tname), "mb:%s", c->name);
	pthread_setname_np(pthread_self(), tname);

	int64_t start = pdm_mono_ms();
	for (size_t i = 0; i < c->n_g; i++)
		c->g[i].next_ms = start;
	c->retry_ms = start;

	while (!atomic_load(&c->stop)) {
		int64_t now = pdm_mono_ms();

		if (!c->connected && now >= c->retry_ms)
			try_connect(c);
		for (size_t i = 0; i < c->n_g && !atomic_load(&c->stop); i++) {
			if (c->g[i].next_ms <= pdm_mono_ms())
				run_group(c, &c->g[i]);
		}

		int64_t wake = INT64_MAX;
		for (size_t i = 0; i < c->n_g; i++)
			if (c->g[i].next_ms < wake)
				wake = c->g[i].next_ms;
		if (!c->connected && c->retry_ms < wake)
			wake = c->retry_ms;
		if (wake <= pdm_mono_ms())
			continue;

		struct timespec ts = { .tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000L };
		pthread_mutex_lock(&c->lock);
		while (!atomic_load(&c->stop) &&
		       pthread_cond_timedwait(&c->cond, &c->lock, &ts) != ETIMEDOUT)
			;
		pthread_mutex_unlock(&c->lock);
	}
	if (c->connected) {
		modbus_close(c->ctx);
		c->connected = false;
	}
	return NULL;
}

int mb_conn_start(struct mb_conn *c)
{
	if (!c)
		return -EINVAL;
	if (c->running)
		return -EALREADY;
	atomic_store(&c->stop, false);
	int rc = pthread_create(&c->thread, NULL, conn_thread, c);
	if (rc != 0) {
		LOG_E("modbus[%s]: cannot start the polling thread: %s", c->name, strerror(rc));
		return -rc;
	}
	c->running = true;
	return 0;
}

void mb_conn_stop(struct mb_conn *c)
{
	if (!c || !c->running)
		return;
	pthread_mutex_lock(&c->lock);
	atomic_store(&c->stop, true);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	c->running = false;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_g; i++)
		c->g[i].st.connected = false;
	pthread_mutex_unlock(&c->lock);
}

void mb_conn_free(struct mb_conn *c)
{
	if (!c)
		return;
	mb_conn_stop(c);
	if (c->ctx) {
		modbus_free(c->ctx);
		c->ctx = NULL;
	}
	if (c->g) {
		for (size_t i = 0; i < c->n_g; i++)
			grp_cleanup(&c->g[i]);
	}
	free(c->g);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c->name);
	free(c->host);
	free(c->device);
	free(c);
}

int mb_conn_stats(struct mb_conn *c, size_t group, struct mb_stats *out)
{
	if (!c || !out || group >= c->n_g)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	*out = c->g[group].st;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* ---- probe ------------------------------------------------------------ */

static void probe_fmt(char *buf, size_t len, const uint16_t *regs, enum mb_type t,
		      enum mb_order o)
{
	double v;
	uint64_t u = mb_decode_bits(regs, t, o);

	mb_decode(regs, t, o, &v);
	switch (t) {
	case MB_T_FLOAT32:
		snprintf(buf, len, "%.9g", v);
		break;
	case MB_T_FLOAT64:
		snprintf(buf, len, "%.17g", v);
		break;
	case MB_T_INT16:
		snprintf(buf, len, "%d", (int16_t)(uint16_t)u);
		break;
	case MB_T_INT32:
		snprintf(buf, len, "%" PRId32, (int32_t)(uint32_t)u);
		break;
	case MB_T_INT64:
		snprintf(buf, len, "%" PRId64, (int64_t)u);
		break;
	case MB_T_UINT16:
	case MB_T_UINT32:
	case MB_T_UINT64:
	case MB_T_BOOL:
		snprintf(buf, len, "%" PRIu64, u);
		break;
	}
}

/* The same registers as every type of their width, in every word order. */
static void probe_table(FILE *out, const uint16_t *regs, int words)
{
	static const enum mb_type t1[] = { MB_T_INT16, MB_T_UINT16 };
	static const enum mb_type t2[] = { MB_T_INT32, MB_T_UINT32, MB_T_FLOAT32 };
	static const enum mb_type t4[] = { MB_T_INT64, MB_T_UINT64, MB_T_FLOAT64 };
	const enum mb_type *ts = words == 1 ? t1 : words == 2 ? t2 : t4;
	int nt = words == 1 ? 2 : 3;
	int w = words == 4 ? 26 : 16;
	char cell[64];

	fprintf(out, "      %-7s", "order");
	for (int j = 0; j < nt; j++)
		fprintf(out, " %-*s", j + 1 < nt ? w : 0, mb_type_name(ts[j]));
	fputc('\n', out);
	if (words == 1) {
		/* 16-bit values have no word order; a byte-swapping device
		 * shows up in the second row. */
		uint16_t sw = (uint16_t)((regs[0] << 8) | (regs[0] >> 8));
		const uint16_t *rows[2] = { regs, &sw };
		const char *names[2] = { "ab", "ba" };
		for (int r = 0; r < 2; r++) {
			fprintf(out, "      %-7s", names[r]);
			for (int j = 0; j < nt; j++) {
				probe_fmt(cell, sizeof(cell), rows[r], ts[j], MB_O_ABCD);
				fprintf(out, " %-*s", j + 1 < nt ? w : 0, cell);
			}
			fputc('\n', out);
		}
		return;
	}
	for (int o = MB_O_ABCD; o <= MB_O_DCBA; o++) {
		fprintf(out, "      %-7s", mb_order_name((enum mb_order)o));
		for (int j = 0; j < nt; j++) {
			probe_fmt(cell, sizeof(cell), regs, ts[j], (enum mb_order)o);
			fprintf(out, " %-*s", j + 1 < nt ? w : 0, cell);
		}
		fputc('\n', out);
	}
}

static int probe_point(FILE *out, modbus_t *ctx, const struct mb_point *p)
{
	uint16_t regs[4] = { 0 };
	uint8_t bit = 0;
	int words = point_width(p);
	struct mb_req r = { .kind = p->kind, .addr = p->address, .count = (uint16_t)words };
	char where[32];

	char bitn[16] = "";
	if (p->has_bit)
		snprintf(bitn, sizeof(bitn), " bit %u", p->bit);
	snprintf(where, sizeof(where), "%s:%u", mb_kind_name(p->kind), p->address);
	fprintf(out, "  %-28s %-11s %-7s %-4s scale %g offset %g%s\n", p->name ? p->name : "?",
		where, mb_type_name(p->type), words > 1 ? mb_order_name(p->order) : "-",
		p->scale, p->offset, bitn);

	int rc = do_read(ctx, &r, regs, &bit);
	int e = errno;
	if (rc != words) {
		int exc = rc < 0 ? errno_exception(e) : 0;
		if (exc)
			fprintf(out, "      error: exception %d (%s)\n", exc, mb_exception_name(exc));
		else
			fprintf(out, "      error: %s\n",
				rc < 0 ? modbus_strerror(e) : "short answer");
		if (exc)
			return -PDM_EMODBUS_EXC;
		return rc < 0 && e > 0 && e < MODBUS_ENOBASE ? -e : -PDM_EPROTO;
	}

	uint8_t q;
	double v = point_value(p, regs, &bit, p->address, &q);
	fprintf(out, "      raw   ");
	if (kind_is_bit(p->kind))
		fprintf(out, " %u", bit ? 1u : 0u);
	for (int i = 0; i < words && !kind_is_bit(p->kind); i++)
		fprintf(out, " %04x", regs[i]);
	fprintf(out, "\n      value  %.10g%s\n", v,
		q == PDM_Q_GOOD ? "" : "  (bad: NaN/Inf or outside valid_min/valid_max)");
	if (!kind_is_bit(p->kind))
		probe_table(out, regs, words);
	return 0;
}

int mb_probe(const struct mb_conn_cfg *cfg, FILE *out)
{
	if (!cfg || !out)
		return -EINVAL;
	int max_regs = cfg->max_regs ? cfg->max_regs : MB_DEF_MAX_REGS;
	if (check_cfg(cfg, max_regs) < 0)
		return -EINVAL;

	const char *name = cfg->name ? cfg->name : "modbus";
	modbus_t *ctx = new_ctx(name, cfg->transport, cfg->host, cfg->port, cfg->device, cfg->baud,
				cfg->parity, cfg->data_bits, cfg->stop_bits);
	if (!ctx)
		return -ENOMEM;
	if (cfg->transport == MB_TCP)
		fprintf(out, "source %s: modbus-tcp %s:%d\n", name, cfg->host, cfg->port);
	else
		fprintf(out, "source %s: modbus-rtu %s %d %d%c%d\n", name, cfg->device, cfg->baud,
			cfg->data_bits, cfg->parity, cfg->stop_bits);

	int64_t to = 0;
	for (size_t i = 0; i < cfg->n_groups; i++)
		if (cfg->groups[i].timeout_ms > to)
			to = cfg->groups[i].timeout_ms;
	set_timeout(ctx, to ? to : MB_DEF_TIMEOUT);
	if (modbus_connect(ctx) < 0) {
		int e = errno;
		fprintf(out, "  cannot connect: %s\n", modbus_strerror(e));
		modbus_free(ctx);
		return e > 0 && e < MODBUS_ENOBASE ? -e : -EIO;
	}
	if (cfg->transport == MB_RTU)
		modbus_flush(ctx);

	int first_err = 0;
	for (size_t i = 0; i < cfg->n_groups; i++) {
		const struct mb_group *g = &cfg->groups[i];

		fprintf(out, "unit %d (%s), %zu sensor%s; addresses are 0-based\n", g->unit_id,
			g->name ? g->name : name, g->n_points, g->n_points == 1 ? "" : "s");
		modbus_set_slave(ctx, g->unit_id);
		set_timeout(ctx, g->timeout_ms ? g->timeout_ms : MB_DEF_TIMEOUT);
		for (size_t j = 0; j < g->n_points; j++) {
			int rc = probe_point(out, ctx, &g->points[j]);
			if (rc < 0 && !first_err)
				first_err = rc;
			/* After a timeout, drop the late answer before the next request. */
			if (rc < 0)
				modbus_flush(ctx);
		}
	}
	modbus_close(ctx);
	modbus_free(ctx);
	fflush(out);
	return first_err;
}
