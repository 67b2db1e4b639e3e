/* pdm_uri - the broker URIs pdmd accepts, in one place, so that the config
 * check and the MQTT client agree on them. */
#ifndef PDM_URI_H
#define PDM_URI_H

#include <stddef.h>

enum pdm_uri_kind { PDM_URI_TCP = 1, PDM_URI_TLS = 2 };

/*
 * The kind of a broker URI: tcp:// or mqtt:// (plain), ssl:// or mqtts://
 * (TLS), followed by something and without spaces. Returns the kind, or
 * -EINVAL for anything else (ws:// and wss:// included: Debian's broker
 * cannot listen for them on one address, so they are not offered untested).
 */
int pdm_uri_kind(const char *uri);

/*
 * Finds the user information (USER[:PASSWORD]@) of a URI, between "://"
 * and the first '/', '?' or '#'; a password may itself hold '@', so the
 * last '@' ends it. Returns 1 and sets *start (its first byte) and *at (the
 * '@') as offsets into uri, or 0 if there is none. Either pointer may be
 * NULL.
 */
int pdm_uri_userinfo(const char *uri, size_t *start, size_t *at);

#endif
