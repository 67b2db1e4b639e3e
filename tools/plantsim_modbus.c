/*
 * plantsim_modbus.c - register encoding and a multi-client Modbus TCP server.
 *
 * The server thread owns the listening socket and every client connection
 * and multiplexes them with select(); a self-pipe wakes it for shutdown.
 * The main thread only replaces register blocks, under the same mutex the
 * server holds while it builds a reply, so a client never sees half of one
 * tick and half of the next within one read.
 */
#include "plantsim_modbus.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <modbus.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define MAX_CLIENTS 64

const struct ps_reg ps_regmap[PS_NSENSORS] = {
	{ PS_SPEED, 8, MB_T_UINT16, MB_O_ABCD, 1.0 },
	{ PS_FLOW, 2, MB_T_FLOAT32, MB_O_ABCD, 1.0 },
	{ PS_PRESSURE, 4, MB_T_FLOAT32, MB_O_CDAB, 1.0 },
	{ PS_CURRENT, 6, MB_T_FLOAT32, MB_O_CDAB, 1.0 },
	{ PS_VIBRATION, 0, MB_T_FLOAT32, MB_O_ABCD, 1.0 },
	{ PS_BEARING_TEMP, 9, MB_T_INT16, MB_O_ABCD, 0.1 },
	{ PS_MOTOR_TEMP, 10, MB_T_INT16, MB_O_ABCD, 0.1 },
};

/* Integer types carry value/scale rounded and clamped, as a transmitter's
 * firmware would; floats carry the value itself. No reading (a broken loop)
 * is the type's under-range code, as analog input cards report a wire
 * break: -32768 (0x8000) for int16, 65535 for uint16, NaN for floats. */
static double to_raw(double v, const struct ps_reg *r)
{
	double raw = v / r->scale;

	if (isnan(v))
		return r->type == MB_T_INT16 ? -32768.0 : r->type == MB_T_UINT16 ? 65535.0 : v;
	switch (r->type) {
	case MB_T_INT16:
		return fmax(-32768.0, fmin(32767.0, round(raw)));
	case MB_T_UINT16:
		return fmax(0.0, fmin(65535.0, round(raw)));
	case MB_T_FLOAT32:
		return fmax(-3.4e38, fmin(3.4e38, raw));
	case MB_T_INT32:
	case MB_T_UINT32:
	case MB_T_INT64:
	case MB_T_UINT64:
	case MB_T_FLOAT64:
	case MB_T_BOOL:
		break;
	}
	return raw;
}

void ps_mb_encode(const struct ps_asset *a, uint32_t tick, uint16_t *regs,
		  double decoded[PS_NSENSORS])
{
	memset(regs, 0, PS_MB_BLOCK * sizeof(*regs));
	for (int s = 0; s < PS_NSENSORS; s++) {
		const struct ps_reg *r = &ps_regmap[s];
		double raw;

		mb_encode(to_raw(a->value[r->sensor], r), r->type, r->order, regs + r->offset);
		mb_decode(regs + r->offset, r->type, r->order, &raw);
		decoded[r->sensor] = raw * r->scale;
	}
	regs[PS_MB_STATUS] = a->running ? 1 : 0;
	mb_encode((double)tick, MB_T_UINT32, MB_O_ABCD, regs + PS_MB_HEARTBEAT);
}

struct ps_mbserver {
	modbus_t *ctx;
	modbus_mapping_t *map;
	pthread_mutex_t lock;
	pthread_t thread;
	bool thread_started;
	int listen_fd;
	int wake[2];
	int port;
	int nassets;
	int clients[MAX_CLIENTS];
	int nclients;
	uint64_t requests, rejected;
};

static void close_client(struct ps_mbserver *s, int idx)
{
	close(s->clients[idx]);
	s->clients[idx] = s->clients[--s->nclients];
}

static void accept_client(struct ps_mbserver *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			LOG_W("plantsim: modbus: accept: %s", strerror(errno));
		return;
	}
	if (s->nclients >= MAX_CLIENTS || fd >= FD_SETSIZE) {
		LOG_W("plantsim: modbus: refusing a client: %d connections already open",
		      s->nclients);
		close(fd);
		return;
	}
	s->clients[s->nclients++] = fd;
	LOG_D("plantsim: modbus: client connected (%d open)", s->nclients);
}

static bool is_write(int function)
{
	switch (function) {
	case MODBUS_FC_WRITE_SINGLE_COIL:
	case MODBUS_FC_WRITE_SINGLE_REGISTER:
	case MODBUS_FC_WRITE_MULTIPLE_COILS:
	case MODBUS_FC_WRITE_MULTIPLE_REGISTERS:
	case MODBUS_FC_MASK_WRITE_REGISTER:
	case MODBUS_FC_WRITE_AND_READ_REGISTERS:
		return true;
	default:
		return false;
	}
}

/* Serves one request from client idx; returns false if it hung up or sent
 * garbage. select() said the client is readable, so modbus_receive() only
 * waits for the rest of a request, bounded by libmodbus's byte timeout. */
static bool serve_client(struct ps_mbserver *s, int idx)
{
	uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
	int hlen = modbus_get_header_length(s->ctx);

	modbus_set_socket(s->ctx, s->clients[idx]);
	int rc = modbus_receive(s->ctx, query);
	if (rc == 0)
		return true;
	if (rc < 0)
		return false;
	pthread_mutex_lock(&s->lock);
	if (is_write(query[hlen])) {
		rc = modbus_reply_exception(s->ctx, query, MODBUS_EXCEPTION_ILLEGAL_FUNCTION);
		s->rejected++;
	} else {
		rc = modbus_reply(s->ctx, query, rc, s->map);
	}
	s->requests++;
	pthread_mutex_unlock(&s->lock);
	return rc >= 0;
}

static void *server_main(void *arg)
{
	struct ps_mbserver *s = arg;

	pthread_setname_np(pthread_self(), "ps-modbus");
	for (;;) {
		fd_set rd;
		int maxfd = s->wake[0] > s->listen_fd ? s->wake[0] : s->listen_fd;

		FD_ZERO(&rd);
		FD_SET(s->wake[0], &rd);
		FD_SET(s->listen_fd, &rd);
		for (int i = 0; i < s->nclients; i++) {
			FD_SET(s->clients[i], &rd);
			if (s->clients[i] > maxfd)
				maxfd = s->clients[i];
		}
		if (select(maxfd + 1, &rd, NULL, NULL, NULL) < 0) {
			if (errno == EINTR)
				continue;
			LOG_E("plantsim: modbus: select: %s; server stopped", strerror(errno));
			break;
		}
		if (FD_ISSET(s->wake[0], &rd))
			break;
		/* Walk backwards: close_client moves the last entry into the gap. */
		for (int i = s->nclients - 1; i >= 0; i--) {
			if (FD_ISSET(s->clients[i], &rd) && !serve_client(s, i)) {
				close_client(s, i);
				LOG_D("plantsim: modbus: client gone (%d open)", s->nclients);
			}
		}
		if (FD_ISSET(s->listen_fd, &rd))
			accept_client(s);
	}
	return NULL;
}

struct ps_mbserver *ps_mbserver_new(int port, int nassets)
{
	struct ps_mbserver *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);

	if (!s)
		return NULL;
	s->listen_fd = -1;
	s->wake[0] = s->wake[1] = -1;
	s->nassets = nassets;
	pthread_mutex_init(&s->lock, NULL);
	if (port < 0 || port > 65535 || nassets < 1 || nassets > 655) {
		LOG_E("plantsim: modbus: bad port %d or asset count %d", port, nassets);
		goto fail;
	}
	int nregs = PS_MB_STRIDE * (nassets - 1) + PS_MB_BLOCK;
	s->map = modbus_mapping_new(0, 0, nregs, nregs);
	s->ctx = modbus_new_tcp("127.0.0.1", port);
	if (!s->map || !s->ctx) {
		LOG_E("plantsim: modbus: out of memory");
		goto fail;
	}
	s->listen_fd = modbus_tcp_listen(s->ctx, 16);
	if (s->listen_fd < 0) {
		LOG_E("plantsim: modbus: cannot listen on 127.0.0.1:%d: %s (choose another "
		      "--modbus-port, or 0 for a free one)", port, modbus_strerror(errno));
		goto fail;
	}
	if (getsockname(s->listen_fd, (struct sockaddr *)&sa, &salen) < 0) {
		LOG_E("plantsim: modbus: getsockname: %s", strerror(errno));
		goto fail;
	}
	s->port = ntohs(sa.sin_port);
	fcntl(s->listen_fd, F_SETFD, FD_CLOEXEC);
	fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK);
	if (pipe2(s->wake, O_CLOEXEC) < 0) {
		LOG_E("plantsim: modbus: pipe: %s", strerror(errno));
		goto fail;
	}
	return s;
fail:
	ps_mbserver_free(s);
	return NULL;
}

int ps_mbserver_start(struct ps_mbserver *s)
{
	if (s->thread_started)
		return 0;
	int rc = pthread_create(&s->thread, NULL, server_main, s);
	if (rc != 0) {
		LOG_E("plantsim: modbus: cannot start thread: %s", strerror(rc));
		return -rc;
	}
	s->thread_started = true;
	return 0;
}

int ps_mbserver_port(const struct ps_mbserver *s)
{
	return s->port;
}

void ps_mbserver_update(struct ps_mbserver *s, int k, const uint16_t *regs)
{
	if (k < 0 || k >= s->nassets)
		return;
	pthread_mutex_lock(&s->lock);
	memcpy(s->map->tab_registers + PS_MB_STRIDE * k, regs, PS_MB_BLOCK * sizeof(*regs));
	memcpy(s->map->tab_input_registers + PS_MB_STRIDE * k, regs, PS_MB_BLOCK * sizeof(*regs));
	pthread_mutex_unlock(&s->lock);
}

void ps_mbserver_free(struct ps_mbserver *s)
{
	if (!s)
		return;
	if (s->thread_started) {
		char c = 'q';
		while (write(s->wake[1], &c, 1) < 0 && errno == EINTR)
			;
		pthread_join(s->thread, NULL);
		LOG_I("plantsim: modbus: served %llu requests (%llu writes refused)",
		      (unsigned long long)s->requests, (unsigned long long)s->rejected);
	}
	while (s->nclients > 0)
		close_client(s, s->nclients - 1);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	for (int i = 0; i < 2; i++)
		if (s->wake[i] >= 0)
			close(s->wake[i]);
	if (s->ctx) {
		/* The context's socket is a client we already closed. */
		modbus_set_socket(s->ctx, -1);
		modbus_free(s->ctx);
	}
	modbus_mapping_free(s->map);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
