/* pdm_secret - whether a file is private enough to hold a secret. */
#ifndef PDM_SECRET_H
#define PDM_SECRET_H

#include <stddef.h>
#include <sys/stat.h>

/*
 * Checks, without reading it, that `path` may hold a secret: a regular file
 * (a symlink is followed and what it points to is checked), owned by root
 * or by the effective user, with no access for others and not writable by
 * its group (0600, or 0640 with a group only pdmd is in), at most
 * max_bytes long (0: any size), and readable by us. Returns 0, or a
 * negative code with the reason and the fix written to why ("FILE has mode
 * 0644: any user can access it; run chmod 600 FILE ..."). Logs nothing.
 */
int pdm_secret_check_file(const char *path, long long max_bytes, char *why, size_t len);

/* The same checks on what stat/fstat returned for path (nothing about
 * readability): for a file already open. */
int pdm_secret_check_stat(const char *path, const struct stat *st, long long max_bytes, char *why,
			  size_t len);

#endif
