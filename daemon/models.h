/*
 * models.h - the versioned model files of each asset.
 *
 * Layout: STATE_DIR/models/ASSET/vNNNNNNNN.pdmm, one file per version,
 * written atomically by nn_model_save. At start the newest file that
 * loads is used; a corrupt or truncated one is skipped (and reported) in
 * favour of the previous version. The newest `keep` files are kept.
 */
#ifndef PDM_MODELS_H
#define PDM_MODELS_H

#include <stddef.h>
#include <stdint.h>

struct nn_model;

/* Writes the asset's model directory path into buf and creates it
 * (with its parents) if missing. Returns 0 or -errno. */
int models_dir(const char *state_dir, const char *asset, char *buf, size_t len);

/* The path of one version's file. */
void models_path(const char *state_dir, const char *asset, uint32_t version, char *buf,
		 size_t len);

/* Versions present on disk, newest first. Returns the count (<= max) or -errno. */
int models_list(const char *state_dir, const char *asset, uint32_t *versions, size_t max);

/* Loads the newest valid model. Files that fail to load are logged and
 * skipped. Returns 0 and sets *out / *version, -ENOENT if none loads. */
int models_load_newest(const char *state_dir, const char *asset, struct nn_model **out,
		       uint32_t *version);

/* Saves m as `version` (atomic). Returns 0 or a negative code. */
int models_save(const char *state_dir, const char *asset, const struct nn_model *m,
		uint32_t version);

/* Removes all but the newest `keep` versions. Returns the number removed. */
int models_prune(const char *state_dir, const char *asset, int keep);

#endif
