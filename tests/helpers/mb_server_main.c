/*
 * mb_server_main.c - the test Modbus server as a separate process, for tests
 * that must kill it or freeze it (SIGSTOP) like a real device.
 *
 * usage: mb_test_server PORT [UNIT]
 * Unit UNIT (default 1) serves hr[i] = 1000 + i, ir[i] = 2000 + i,
 * coil[i] = i % 2, di[i] = (i % 3 == 0) for i < 100. Prints "ready PORT"
 * on stdout once listening; exits on SIGTERM or SIGINT.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "mb_server.h"

int main(int argc, char **argv)
{
	sigset_t set;
	int sig;

	if (argc < 2) {
		fprintf(stderr, "usage: %s PORT [UNIT]\n", argv[0]);
		return 2;
	}
	int port = (int)strtol(argv[1], NULL, 10);
	int unit = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 1;

	/* Block before the server thread exists so it inherits the mask and
	 * the signal is taken here by sigwait. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct mb_server *s = mb_server_start_tcp(port);
	if (!s)
		return 1;
	uint16_t hr[100], ir[100];
	uint8_t co[100], di[100];
	for (int i = 0; i < 100; i++) {
		hr[i] = (uint16_t)(1000 + i);
		ir[i] = (uint16_t)(2000 + i);
		co[i] = (uint8_t)(i % 2);
		di[i] = (uint8_t)(i % 3 == 0);
	}
	mb_server_set_regs(s, unit, MB_K_HR, 0, hr, 100);
	mb_server_set_regs(s, unit, MB_K_IR, 0, ir, 100);
	mb_server_set_bits(s, unit, MB_K_COIL, 0, co, 100);
	mb_server_set_bits(s, unit, MB_K_DI, 0, di, 100);
	printf("ready %d\n", mb_server_port(s));
	fflush(stdout);
	sigwait(&set, &sig);
	mb_server_stop(s);
	return 0;
}
