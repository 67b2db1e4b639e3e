/*
 * mb_conn.h - Modbus TCP/RTU polling: one connection, one thread.
 *
 * A connection is a TCP peer or a serial bus. It carries one or more groups
 * (a unit id with its own poll rate and timeout; a serial bus shared by
 * several unit ids is ONE connection with several groups). The connection's
 * thread reads every group's points at the group's rate, merging nearby
 * registers of the same unit and kind into as few requests as the limits
 * allow, and hands decoded samples to a callback. When the peer fails, the
 * thread reconnects with exponential backoff and jitter while every affected
 * sensor is reported PDM_Q_STALE once per missed poll; other connections run
 * on their own threads and are not affected.
 *
 * Addresses are 0-based protocol addresses (the "40001" of many device
 * manuals is holding register address 0; see docs/modbus.md).
 */
#ifndef MB_CONN_H
#define MB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mb_decode.h"
#include "sample.h"

enum mb_kind {
	MB_K_HR,   /* holding registers, function 3 */
	MB_K_IR,   /* input registers, function 4 */
	MB_K_COIL, /* coils, function 1 */
	MB_K_DI,   /* discrete inputs, function 2 */
};

/* "hr" "ir" "coil" "di" -> kind; returns 0 or -EINVAL. */
int mb_kind_parse(const char *s, enum mb_kind *k);
/* Parses a sensor's "register" setting, KIND:ADDRESS with a 0-based
 * decimal or 0x-hex address ("hr:100", "coil:0x10"). Returns 0, or -EINVAL
 * (no kind, unknown kind, bad number) or -ERANGE (address above 65535). */
int mb_register_parse(const char *s, enum mb_kind *k, uint16_t *addr);

/* Static name of a kind ("hr", ...), "?" if out of range. */
const char *mb_kind_name(enum mb_kind k);

/* Name of a Modbus exception code ("illegal data address"), or
 * "unknown exception" for codes outside 1..11. Static string. */
const char *mb_exception_name(int code);

/* One sensor. Coils and discrete inputs must be MB_T_BOOL. value = raw *
 * scale + offset; scale must be finite and nonzero. */
struct mb_point {
	uint32_t sensor;
	const char *name;
	enum mb_kind kind;
	uint16_t address;
	enum mb_type type;
	enum mb_order order;
	double scale, offset;
	bool has_min, has_max;
	double valid_min, valid_max;
	/* one bit of an integer register value (a PLC's status word): the
	 * point reads 0 or 1, before scale and offset */
	bool has_bit;
	uint8_t bit;
};

/* One [source] section: a unit id on a connection, with its own poll rate.
 * poll_ms 0 polls back to back; timeout_ms 0 means 1000. */
struct mb_group {
	const char *name;
	int unit_id;
	int64_t poll_ms;
	int64_t timeout_ms;
	const struct mb_point *points;
	size_t n_points;
};

enum mb_transport { MB_TCP, MB_RTU };

/* Zero means "default" for the numeric limits: max_regs 125, max_bits 2000,
 * max_gap 8 (set max_gap to -1 for "never read unused registers"),
 * backoff_min_ms 100, backoff_max_ms 30000. */
struct mb_conn_cfg {
	const char *name; /* for logs: the source (or bus) name */
	enum mb_transport transport;
	const char *host; /* TCP */
	int port;
	const char *device; /* RTU */
	int baud;
	char parity; /* 'N' 'E' 'O' */
	int data_bits, stop_bits;
	int max_regs, max_bits, max_gap; /* request merging limits */
	int64_t backoff_min_ms, backoff_max_ms;
	const struct mb_group *groups;
	size_t n_groups;
};

struct mb_conn;

/* Validates and deep-copies cfg (the caller may free it afterwards); cb is
 * called from the connection's thread with each group's samples after each
 * poll (see pdm_sample_cb). Returns NULL on an invalid configuration (the
 * reason is logged) or out of memory. */
struct mb_conn *mb_conn_new(const struct mb_conn_cfg *cfg, pdm_sample_cb cb, void *user);

/* Spawns the polling thread (named "mb:<name>"). Returns 0, -EALREADY, or
 * -errno from pthread_create. Connecting happens on the thread. */
int mb_conn_start(struct mb_conn *c);

/* Asks the thread to stop and joins it: returns within about one request
 * timeout even if the peer hangs. Idempotent; no callbacks after return.
 * Must not be called from the sample callback (it runs on that thread). */
void mb_conn_stop(struct mb_conn *c);

/* Stops if needed and frees. Accepts NULL. */
void mb_conn_free(struct mb_conn *c);

/*
 * Counters of one group, all since mb_conn_new:
 *   requests     Modbus requests sent
 *   errors       failed requests (timeouts, exceptions, I/O) and failed
 *                connection attempts
 *   timeouts     requests that got no answer in time (subset of errors)
 *   exceptions   exception responses (subset of errors); exc_by_code[n]
 *                counts code n (1..11), exc_by_code[0] any other code
 *   reconnects   connections re-established after a failure
 *   last_success_ms  wall-clock ms of the last successful request, or 0
 *   latency_*    duration of the group's whole poll (all its requests)
 *   connected    the connection is currently open
 */
struct mb_stats {
	uint64_t requests, errors, timeouts, exceptions, reconnects;
	uint64_t exc_by_code[12];
	int64_t last_success_ms;
	double latency_last_ms, latency_avg_ms, latency_max_ms;
	bool connected;
};

/* Thread-safe snapshot of group `group`'s counters. Returns 0 or -EINVAL. */
int mb_conn_stats(struct mb_conn *c, size_t group, struct mb_stats *out);

/* Number of Modbus requests one poll of group `group` sends as planned at
 * construction (after merging), or -EINVAL. A merged read that the device
 * refuses with "illegal data address" is split into one request per sensor
 * from then on, so the actual number can grow. */
int mb_conn_requests_per_poll(const struct mb_conn *c, size_t group);

/*
 * Commissioning aid: connects, reads every point of every group once (one
 * request per point, so a bad point does not hide the others) and prints a
 * table to `out`: raw registers in hex, the configured value, and the
 * registers decoded as every type of the same width in every word order.
 * Synchronous. Returns 0 if every point was read, else the first error
 * (-PDM_EMODBUS_EXC, -ETIMEDOUT, -ECONNREFUSED, ..., or -EINVAL for a bad
 * configuration).
 */
int mb_probe(const struct mb_conn_cfg *cfg, FILE *out);

#endif
