/*
 * test_notify.c - sd_notify messages reach a NOTIFY_SOCKET of our own.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "notify.h"
#include "pdm_config.h"
#include "test_util.h"

static int recv_msg(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 2000) != 1)
		return -1;
	ssize_t n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static void test_messages(void **state)
{
	char dir[256], path[300], buf[512];
	(void)state;

#if !HAVE_SYSTEMD
	skip();
#endif
	assert_int_equal(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/notify.sock", dir);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setenv("NOTIFY_SOCKET", path, 1);

	notify_ready();
	assert_int_equal(recv_msg(fd, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "READY=1");
	notify_watchdog();
	assert_int_equal(recv_msg(fd, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "WATCHDOG=1");
	notify_status("%d assets", 3);
	assert_int_equal(recv_msg(fd, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "STATUS=3 assets");

	/* The watchdog period comes from the environment for our own pid. */
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	setenv("WATCHDOG_USEC", "4000000", 1);
	assert_int_equal(notify_watchdog_usec(), 4000000);
	unsetenv("WATCHDOG_USEC");
	assert_int_equal(notify_watchdog_usec(), 0);

	unsetenv("NOTIFY_SOCKET");
	close(fd);
	test_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
