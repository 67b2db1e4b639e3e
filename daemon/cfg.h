/*
 * cfg.h - pdmd configuration: /etc/pdmd/pdmd.conf then every conf.d file ending in .conf.
 *
 * The loader reads every file into one struct pdm_config, validates keys
 * and values, and reports each problem as "file:line: key: reason".
 */
#ifndef PDM_CFG_H
#define PDM_CFG_H

#include <stdio.h>

struct pdm_config;

/* Loads DIR/pdmd.conf and every DIR/conf.d file ending in .conf (name order). On error returns
 * NULL and has printed every problem found to `err` (one line each).
 * The caller owns the result; free with cfg_free(). */
struct pdm_config *cfg_load(const char *dir, FILE *err);
void cfg_free(struct pdm_config *cfg);

/* Prints the resolved setup (every section and key with its value). */
void cfg_print(const struct pdm_config *cfg, FILE *out);

#endif
