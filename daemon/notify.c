/*
 * notify.c - sd_notify glue; libsystemd stays optional behind this file.
 */
#include "notify.h"

#include <stdarg.h>
#include <stdio.h>

#include "pdm_config.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static void notify_send(const char *msg)
{
#if HAVE_SYSTEMD
	sd_notify(0, msg);
#else
	(void)msg;
#endif
}

void notify_ready(void)
{
	notify_send("READY=1");
}

void notify_reloading(void)
{
	notify_send("RELOADING=1");
}

void notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void notify_watchdog(void)
{
	notify_send("WATCHDOG=1");
}

void notify_status(const char *fmt, ...)
{
	char buf[256] = "STATUS=";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + 7, sizeof(buf) - 7, fmt, ap);
	va_end(ap);
	notify_send(buf);
}

uint64_t notify_watchdog_usec(void)
{
#if HAVE_SYSTEMD
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
#endif
	return 0;
}
