/*
 * episodes.h - an asset's recent alert episodes, as training and
 * `pdmctl normal` / `pdmctl alerts` see them, and their saved form.
 *
 * The engine keeps the newest EPISODES_MAX episodes of each asset: training
 * leaves their windows out unless the user took one as normal operation.
 * The list lives in the state store (kv "episodes/ASSET") as a JSON array
 * of [start_ms, end_ms or -1 while open, seq, normal 0|1]; lists saved
 * before seq was kept have the first two only. The daemon writes it and
 * pdmctl reads it: both go through this module, so the form has one owner.
 */
#ifndef PDM_EPISODES_H
#define PDM_EPISODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trainer.h"

#define EPISODES_MAX 64

struct store;

struct episode {
	struct train_episode span; /* end INT64_MAX while open */
	uint64_t seq;              /* the alert id's number; 0 in lists saved before it was kept */
	bool normal;               /* taken as normal operation (pdmctl normal) */
};

/* The saved form of ep[0..n): a malloc'd string, NULL when out of memory. */
char *episodes_format(const struct episode *ep, size_t n);

/* Reads a saved list into ep[0..max), keeping the newest max when it holds
 * more. Entries that are not [number, number] or [number x 4] with a start
 * before the end are skipped. Returns the number skipped (0 for a sound
 * list), or -EINVAL when text is not a JSON array (*n is then 0). */
int episodes_parse(const char *text, struct episode *ep, size_t max, size_t *n);

/* The list of asset in the store: *n = 0 when none was saved. Returns as
 * episodes_parse, or a negative store error. */
int episodes_load(struct store *s, const char *asset, struct episode *ep, size_t max, size_t *n);
int episodes_save(struct store *s, const char *asset, const struct episode *ep, size_t n);

/* Appends one to ep[0..*n), the oldest giving way when max are there. */
void episodes_add(struct episode *ep, size_t *n, size_t max, struct episode one);

/* The index of the episode with number seq, newest first, or (in lists
 * saved before seq was kept) the one that started at started_ms if that
 * is > 0; -1 if the list has neither. */
int episodes_find(const struct episode *ep, size_t n, uint64_t seq, int64_t started_ms);

#endif
