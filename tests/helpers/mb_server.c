/*
 * mb_server.c - libmodbus test server in a thread (TCP or RTU).
 *
 * TCP: one select() loop over the listening socket and every client, with
 * a short timeout so mb_server_stop() is prompt. RTU: libmodbus's RTU
 * receiver only accepts frames for one slave id, so frames are cut from the
 * line here (length known from the function code, CRC checked) and handed
 * to modbus_reply(), which answers with the request's own unit id; that is
 * what lets several unit ids share one line.
 */
#include "mb_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EXC 32

struct exc_rule {
	int unit;
	enum mb_kind kind;
	uint16_t addr;
	int code;
};

struct mb_server {
	bool rtu;
	modbus_t *ctx;
	int listen_fd;
	int port;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock;
	modbus_mapping_t *units[256];
	struct exc_rule exc[MAX_EXC];
	uint64_t requests;
};

static modbus_mapping_t *unit_map(struct mb_server *s, int unit)
{
	if (unit < 0 || unit > 255)
		return NULL;
	if (!s->units[unit])
		s->units[unit] = modbus_mapping_new(MB_SERVER_SIZE, MB_SERVER_SIZE, MB_SERVER_SIZE,
						    MB_SERVER_SIZE);
	return s->units[unit];
}

int mb_server_add_unit(struct mb_server *s, int unit)
{
	pthread_mutex_lock(&s->lock);
	modbus_mapping_t *m = unit_map(s, unit);
	pthread_mutex_unlock(&s->lock);
	return m ? 0 : -EINVAL;
}

int mb_server_set_regs(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
		       const uint16_t *v, size_t n)
{
	if ((k != MB_K_HR && k != MB_K_IR) || addr + n > MB_SERVER_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	modbus_mapping_t *m = unit_map(s, unit);
	if (m)
		memcpy((k == MB_K_HR ? m->tab_registers : m->tab_input_registers) + addr, v,
		       n * sizeof(*v));
	pthread_mutex_unlock(&s->lock);
	return m ? 0 : -EINVAL;
}

int mb_server_set_bits(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
		       const uint8_t *v, size_t n)
{
	if ((k != MB_K_COIL && k != MB_K_DI) || addr + n > MB_SERVER_SIZE)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	modbus_mapping_t *m = unit_map(s, unit);
	if (m) {
		uint8_t *dst = (k == MB_K_COIL ? m->tab_bits : m->tab_input_bits) + addr;
		for (size_t i = 0; i < n; i++)
			dst[i] = v[i] ? 1 : 0;
	}
	pthread_mutex_unlock(&s->lock);
	return m ? 0 : -EINVAL;
}

int mb_server_set_value(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
			double value, enum mb_type t, enum mb_order o)
{
	uint16_t regs[4];

	mb_encode(value, t, o, regs);
	return mb_server_set_regs(s, unit, k, addr, regs, (size_t)mb_type_words(t));
}

int mb_server_set_exception(struct mb_server *s, int unit, enum mb_kind k, uint16_t addr,
			    int code)
{
	int rc = -ENOSPC;

	if (code < 0 || code > 11)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < MAX_EXC; i++) {
		struct exc_rule *r = &s->exc[i];
		if (r->code && r->unit == unit && r->kind == k && r->addr == addr) {
			r->code = code;
			rc = 0;
			goto out;
		}
	}
	if (code == 0) {
		rc = 0;
		goto out;
	}
	for (int i = 0; i < MAX_EXC; i++) {
		if (!s->exc[i].code) {
			s->exc[i] = (struct exc_rule){ unit, k, addr, code };
			rc = 0;
			break;
		}
	}
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

uint64_t mb_server_requests(struct mb_server *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t n = s->requests;
	pthread_mutex_unlock(&s->lock);
	return n;
}

int mb_server_port(const struct mb_server *s)
{
	return s->port;
}

static int fc_kind(int fc, enum mb_kind *k)
{
	switch (fc) {
	case MODBUS_FC_READ_COILS:
		*k = MB_K_COIL;
		return 0;
	case MODBUS_FC_READ_DISCRETE_INPUTS:
		*k = MB_K_DI;
		return 0;
	case MODBUS_FC_READ_HOLDING_REGISTERS:
		*k = MB_K_HR;
		return 0;
	case MODBUS_FC_READ_INPUT_REGISTERS:
		*k = MB_K_IR;
		return 0;
	default:
		return -1;
	}
}

/* Answers one complete request (header included). */
static void handle(struct mb_server *s, const uint8_t *q, int len)
{
	int hdr = modbus_get_header_length(s->ctx);
	int unit = q[hdr - 1], fc = q[hdr];
	enum mb_kind k;

	pthread_mutex_lock(&s->lock);
	s->requests++;
	modbus_mapping_t *m = s->units[unit];
	if (!m) {
		if (!s->rtu)
			modbus_reply_exception(s->ctx, q, MODBUS_EXCEPTION_GATEWAY_TARGET);
		goto out;
	}
	if (len >= hdr + 5 && fc_kind(fc, &k) == 0) {
		unsigned addr = (unsigned)(q[hdr + 1] << 8 | q[hdr + 2]);
		unsigned cnt = (unsigned)(q[hdr + 3] << 8 | q[hdr + 4]);
		for (int i = 0; i < MAX_EXC; i++) {
			const struct exc_rule *r = &s->exc[i];
			if (r->code && r->unit == unit && r->kind == k && r->addr >= addr &&
			    r->addr < addr + cnt) {
				modbus_reply_exception(s->ctx, q, (unsigned)r->code);
				goto out;
			}
		}
	}
	modbus_reply(s->ctx, q, len, m);
out:
	pthread_mutex_unlock(&s->lock);
}

static void *tcp_loop(void *arg)
{
	struct mb_server *s = arg;
	int clients[FD_SETSIZE];
	int n = 0;
	uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];

	pthread_setname_np(pthread_self(), "mb-test-srv");
	while (!atomic_load(&s->stop)) {
		fd_set rd;
		int maxfd = s->listen_fd;
		struct timeval tv = { 0, 20000 };

		FD_ZERO(&rd);
		FD_SET(s->listen_fd, &rd);
		for (int i = 0; i < n; i++) {
			FD_SET(clients[i], &rd);
			if (clients[i] > maxfd)
				maxfd = clients[i];
		}
		int rc = select(maxfd + 1, &rd, NULL, NULL, &tv);
		if (rc <= 0)
			continue;
		if (FD_ISSET(s->listen_fd, &rd)) {
			int fd = accept(s->listen_fd, NULL, NULL);
			if (fd >= 0 && n < FD_SETSIZE - 1 && fd < FD_SETSIZE)
				clients[n++] = fd;
			else if (fd >= 0)
				close(fd);
		}
		for (int i = 0; i < n; i++) {
			if (!FD_ISSET(clients[i], &rd))
				continue;
			modbus_set_socket(s->ctx, clients[i]);
			rc = modbus_receive(s->ctx, q);
			if (rc > 0) {
				handle(s, q, rc);
			} else if (rc < 0) {
				close(clients[i]);
				clients[i] = clients[--n];
				i--;
			}
		}
	}
	for (int i = 0; i < n; i++)
		close(clients[i]);
	modbus_set_socket(s->ctx, -1);
	return NULL;
}

static uint16_t crc16(const uint8_t *p, int n)
{
	uint16_t crc = 0xffff;

	for (int i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xa001) : (uint16_t)(crc >> 1);
	}
	return crc;
}

/* Length of the RTU request starting at buf, 0 if more bytes are needed to
 * tell, -1 for a function code this server does not frame. */
static int rtu_frame_len(const uint8_t *buf, int have)
{
	if (have < 2)
		return 0;
	switch (buf[1]) {
	case 1: case 2: case 3: case 4: case 5: case 6:
		return 8;
	case 15: case 16:
		return have < 7 ? 0 : 9 + buf[6];
	default:
		return -1;
	}
}

static void *rtu_loop(void *arg)
{
	struct mb_server *s = arg;
	int fd = modbus_get_socket(s->ctx);
	uint8_t buf[MODBUS_RTU_MAX_ADU_LENGTH * 2];
	int have = 0;

	pthread_setname_np(pthread_self(), "mb-test-rtu");
	while (!atomic_load(&s->stop)) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int rc = poll(&pfd, 1, 20);
		if (rc <= 0) {
			/* Silence on the line ends any partial frame. */
			have = 0;
			continue;
		}
		ssize_t got = read(fd, buf + have, sizeof(buf) - (size_t)have);
		if (got <= 0) {
			/* The other end of the line is gone (EIO on a pty): wait
			 * for stop instead of spinning on POLLHUP. */
			have = 0;
			if (got == 0 || (errno != EINTR && errno != EAGAIN))
				usleep(20000);
			continue;
		}
		have += (int)got;
		for (;;) {
			int len = rtu_frame_len(buf, have);
			if (len < 0 || len > MODBUS_RTU_MAX_ADU_LENGTH) {
				have = 0;
				break;
			}
			if (len == 0 || have < len)
				break;
			uint16_t crc = crc16(buf, len - 2);
			if (buf[len - 2] == (crc & 0xff) && buf[len - 1] == (crc >> 8))
				handle(s, buf, len);
			memmove(buf, buf + len, (size_t)(have - len));
			have -= len;
		}
	}
	return NULL;
}

static struct mb_server *server_alloc(void)
{
	struct mb_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->listen_fd = -1;
	atomic_init(&s->stop, false);
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

static void server_free(struct mb_server *s)
{
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->ctx) {
		if (s->rtu)
			modbus_close(s->ctx);
		modbus_free(s->ctx);
	}
	for (int i = 0; i < 256; i++)
		modbus_mapping_free(s->units[i]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

struct mb_server *mb_server_start_tcp(int port)
{
	struct mb_server *s = server_alloc();
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int one = 1;

	if (!s)
		return NULL;
	s->ctx = modbus_new_tcp("127.0.0.1", port);
	if (!s->ctx)
		goto fail;
	/* Our own listening socket: libmodbus cannot bind port 0 and report
	 * the port it got. */
	s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0)
		goto fail;
	setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s->listen_fd, 16) < 0 ||
	    getsockname(s->listen_fd, (struct sockaddr *)&sa, &sl) < 0) {
		fprintf(stderr, "mb_server: cannot listen on 127.0.0.1:%d: %s\n", port,
			strerror(errno));
		goto fail;
	}
	s->port = ntohs(sa.sin_port);
	if (pthread_create(&s->thread, NULL, tcp_loop, s) != 0)
		goto fail;
	return s;
fail:
	server_free(s);
	return NULL;
}

struct mb_server *mb_server_start_rtu(const char *device, int baud)
{
	struct mb_server *s = server_alloc();

	if (!s)
		return NULL;
	s->rtu = true;
	s->ctx = modbus_new_rtu(device, baud, 'N', 8, 1);
	if (!s->ctx || modbus_connect(s->ctx) < 0) {
		fprintf(stderr, "mb_server: cannot open %s: %s\n", device, modbus_strerror(errno));
		if (s->ctx) {
			modbus_free(s->ctx);
			s->ctx = NULL;
		}
		goto fail;
	}
	if (pthread_create(&s->thread, NULL, rtu_loop, s) != 0)
		goto fail;
	return s;
fail:
	server_free(s);
	return NULL;
}

void mb_server_stop(struct mb_server *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	server_free(s);
}
