/*
 * pdm_error.h - error codes beyond errno, and one strerror for all of them.
 *
 * Functions return 0 or a negative code: -errno values, or the -PDM_E*
 * values below for failures errno has no name for.
 */
#ifndef PDM_ERROR_H
#define PDM_ERROR_H

enum {
	PDM_EBASE = 10000,
	PDM_ECORRUPT,    /* data failed an integrity check (CRC, magic, sizes) */
	PDM_EVERSION,    /* a file format version we do not read */
	PDM_ENONFINITE,  /* NaN or Inf where a finite number is required */
	PDM_ECONFIG,     /* configuration invalid */
	PDM_EPROTO,      /* peer spoke the protocol wrongly */
	PDM_EMODBUS_EXC, /* Modbus exception response */
	PDM_ELAST
};

/* Returns a static description of a negative (or positive) error code. */
const char *pdm_strerror(int err);

#endif
