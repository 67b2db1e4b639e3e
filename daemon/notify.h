/*
 * notify.h - the service manager protocol (sd_notify), optional.
 *
 * With libsystemd (the `systemd` build feature) these send READY=1,
 * WATCHDOG=1, STATUS=..., RELOADING=1 and STOPPING=1 to $NOTIFY_SOCKET;
 * without it, or when not started by systemd, they do nothing.
 */
#ifndef PDM_NOTIFY_H
#define PDM_NOTIFY_H

#include <stdint.h>

void notify_ready(void);
void notify_reloading(void);
void notify_stopping(void);
void notify_watchdog(void);
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Watchdog period requested by the service manager in microseconds, or 0
 * when there is none. Ping at half of it. */
uint64_t notify_watchdog_usec(void);

#endif
