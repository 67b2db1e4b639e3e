/*
 * mb_server.h - a real libmodbus server for tests, running in a thread.
 *
 * Serves holding/input registers, coils and discrete inputs per unit id
 * over TCP (127.0.0.1, any number of clients) or RTU (a tty such as one end
 * of a socat pty pair, several unit ids on the one line). Values can be
 * changed while clients poll; an address can be made to answer with an
 * exception. Reusable by the daemon's integration tests.
 */
#ifndef PDM_MB_SERVER_H
#define PDM_MB_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "mb_conn.h"

/* Each unit serves addresses 0..MB_SERVER_SIZE-1 of every kind. */
#define MB_SERVER_SIZE 4096

struct mb_server;

/* Listens on 127.0.0.1:port (0 picks a free port). A unit id nobody set
 * data for is answered with exception 11, as a gateway would. NULL on
 * failure. */
struct mb_server *mb_server_start_tcp(int port);

/* Serves an RTU line on `device` (8N1). Requests for unit ids nobody set
 * data for get no answer, as on a real bus. NULL on failure. */
struct mb_server *mb_server_start_rtu(const char *device, int baud);

/* The TCP port (0 for RTU). */
int mb_server_port(const struct mb_server *s);

/* Makes `unit` answer (all zeros) without setting data. Returns 0 or -errno. */
int mb_server_add_unit(struct mb_server *s, int unit);

/* Sets registers (hr, ir) or bits (coil, di) of a unit, creating the unit
 * if needed. Thread-safe. Return 0, or -EINVAL for a range outside the map. */
int mb_server_set_regs(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
		       const uint16_t *v, size_t n);
int mb_server_set_bits(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
		       const uint8_t *v, size_t n);
/* Encodes a value as `t` in word order `o` at a register address. */
int mb_server_set_value(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
			double value, enum mb_type t, enum mb_order o);

/* Any read of `k` covering `addr` on `unit` is answered with exception
 * `code` (1..11); code 0 removes the rule. Returns 0 or -ENOSPC/-EINVAL. */
int mb_server_set_exception(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
			    int code);

/* Requests received so far (answered or not). */
uint64_t mb_server_requests(struct mb_server *s);

/* Stops the thread, closes every connection and frees. Accepts NULL. */
void mb_server_stop(struct mb_server *s);

#endif
