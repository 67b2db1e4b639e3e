/*
 * pdm_secret - whether a file is private enough to hold a secret (the
 * broker password, the TLS key). Used by the config check, which reports a
 * loose file as file:line, and by the MQTT client before it reads one.
 */
#include "pdm_secret.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/*
 * Whether a file may hold a secret (see pdm_secret_check_file). Group read
 * is allowed so that a file can be 0640 root:pdmd, and so that systemd's
 * credentials (0400 plus an ACL, which shows as group read) pass.
 */
int pdm_secret_check_stat(const char *path, const struct stat *st, long long max_bytes, char *why,
			  size_t len)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);

	if (!S_ISREG(st->st_mode)) {
		snprintf(why, len, "%s is not a regular file", path);
		return -EINVAL;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(why, len,
			 "%s belongs to uid %u, who could change or show it; it must belong to root "
			 "or to the user pdmd runs as (chown root %s)",
			 path, (unsigned)st->st_uid, path);
		return -EPERM;
	}
	if (mode & S_IRWXO) {
		snprintf(why, len,
			 "%s has mode %04o: any user can access it; run chmod 600 %s (or chmod 640 "
			 "with a group only pdmd is in: chown root:pdmd)",
			 path, mode, path);
		return -EACCES;
	}
	if (mode & S_IWGRP) {
		snprintf(why, len,
			 "%s has mode %04o: its group can change it; run chmod 600 %s (or 640)", path,
			 mode, path);
		return -EACCES;
	}
	if (max_bytes > 0 && (long long)st->st_size > max_bytes) {
		snprintf(why, len, "%s has %lld bytes, more than the %lld it may have", path,
			 (long long)st->st_size, max_bytes);
		return -EFBIG;
	}
	return 0;
}

int pdm_secret_check_file(const char *path, long long max_bytes, char *why, size_t len)
{
	struct stat st;
	int rc;

	if (!path || !why || len == 0)
		return -EINVAL;
	why[0] = '\0';
	if (stat(path, &st) < 0) {
		rc = -errno;
		snprintf(why, len, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	rc = pdm_secret_check_stat(path, &st, max_bytes, why, len);
	if (rc < 0)
		return rc;
	if (access(path, R_OK) < 0) {
		rc = -errno;
		snprintf(why, len, "cannot read %s: %s", path, strerror(errno));
		return rc;
	}
	return 0;
}
