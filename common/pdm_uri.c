/* pdm_uri.c - broker URI kinds and user information (see pdm_uri.h). */
#include "pdm_uri.h"

#include <errno.h>
#include <string.h>

int pdm_uri_kind(const char *uri)
{
	static const struct {
		const char *scheme;
		int kind;
	} schemes[] = {
		{ "tcp://", PDM_URI_TCP },
		{ "mqtt://", PDM_URI_TCP },
		{ "ssl://", PDM_URI_TLS },
		{ "mqtts://", PDM_URI_TLS },
	};
	if (!uri)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		size_t l = strlen(schemes[i].scheme);
		if (strncmp(uri, schemes[i].scheme, l) == 0 && uri[l] != '\0' &&
		    !strchr(uri + l, ' '))
			return schemes[i].kind;
	}
	return -EINVAL;
}

int pdm_uri_userinfo(const char *uri, size_t *start, size_t *at)
{
	const char *auth = uri ? strstr(uri, "://") : NULL;
	const char *last = NULL;

	if (!auth)
		return 0;
	auth += 3;
	for (const char *p = auth; *p && !strchr("/?#", *p); p++)
		if (*p == '@')
			last = p;
	if (!last)
		return 0;
	if (start)
		*start = (size_t)(auth - uri);
	if (at)
		*at = (size_t)(last - uri);
	return 1;
}
