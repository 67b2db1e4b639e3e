/*
 * pdm_error.c - descriptions for pdmd's own error codes, falling back to
 * strerror for errno values.
 */
#include "pdm_error.h"

#include <string.h>

const char *pdm_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case PDM_ECORRUPT:
		return "data corrupt (integrity check failed)";
	case PDM_EVERSION:
		return "unsupported format version";
	case PDM_ENONFINITE:
		return "input contains NaN or Inf";
	case PDM_ECONFIG:
		return "invalid configuration";
	case PDM_EPROTO:
		return "protocol error";
	case PDM_EMODBUS_EXC:
		return "Modbus exception response";
	default:
		return strerror(err);
	}
}
