/*
 * engine_int.h - the main loop's state, shared by the files of the engine
 * module (engine.c runs the loop; engine_status.c writes status.json for
 * pdmctl). Nothing outside daemon/engine*.c includes this.
 */
#ifndef PDM_ENGINE_INT_H
#define PDM_ENGINE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "episodes.h"
#include "learn.h"
#include "log.h"
#include "pdm_time.h"
#include "sample.h"

#define FLYING_CAP 256
#define EVENT_CAP 4096

enum mq_event_kind { MQ_UP, MQ_DOWN, MQ_DELIVERED };

struct mq_event {
	enum mq_event_kind kind;
	uint64_t tag;
	int rc;
};

struct engine;

struct asset_rt {
	struct engine *e;
	const struct cfg_asset *cfg;
	size_t index;
	struct detector *det;
	const char **channel_names;
	const char **channel_units; /* "" for none: alert contributors' unit */
	uint32_t *store_ids;
	uint32_t score_id; /* the score is kept as a pseudo-sensor "ASSET/score" */
	char state_topic[512], alert_topic[512], model_topic[512];
	char *state_json; /* retained: republished on every connect */
	char *model_json;
	bool state_dirty, model_dirty;
	int64_t trained_at_ms;   /* the model's (0: none) */
	int64_t retrain_base_ms; /* the retrain period counts from here: the model or the last try */
	int64_t skip_told_ms;    /* the open episode a skipped retrain was explained for */
	/* Learning without alerts (learn.h): after the first model, or after
	 * the user took an open episode as normal (relearning). */
	bool learning;
	int64_t relearn_since_ms; /* relearning: the episode's start; 0: the first model's learning */
	struct learn learn;       /* on the asset's clock */
	/* The first model's learning, as its scores come: which sensor led each
	 * stretch over the threshold (the store keeps the scores only). */
	struct learn_over live_over;
	struct pdm_ratelimit state_rl; /* state change lines */
	struct pdm_ratelimit sensor_rl; /* missing / stuck sensor lines */
	bool own_clock;          /* some sensor is stamped by the daemon's clock */
	int64_t clock_lag_ms;    /* all stamped by devices: how far their clock's "now" trails */
	int64_t late_since_mono; /* ... and their samples all late since then; 0 = not */
	/* Some stamped by devices, some by the host: the host's clock, and the
	 * windows wait for the devices' samples (mixed_wait) as long as their
	 * largest lag, of this source. */
	int64_t mixed_lag_ms;
	size_t mixed_lag_src;
	int64_t mixed_over_since_mono; /* the lag over the wait's bound since; 0 = not */
	int64_t mixed_warned_mono;     /* 0: not warned */
	/* Windows that all have gaps because a sensor reports less often than
	 * the asset holds a value (check_sparse in engine.c). */
	int64_t sparse_check_mono, sparse_warned_mono;
	uint64_t sparse_ok_mark, sparse_win_mark;
	/* Each sensor's hold as last said in the log and saved ("hold/ASSET"):
	 * a learned one changes with how often the sensor reports. */
	int64_t *hold_saved_ms;
	uint64_t trainable_mark; /* detector count when the last job was judged short */
	size_t windows_needed;
	bool retrain_requested;
	int64_t retrain_since_ms; /* the request's --since (0: none), until submitted */
	int64_t training_since_ms; /* the same, for the job in flight */
	struct episode episodes[EPISODES_MAX];
	size_t n_episodes;
	uint64_t alerts;
	int64_t last_alert_ms;
	char last_alert_id[128];
};

struct sensor_map {
	int asset;   /* -1 if the sensor's asset is unknown (cannot happen after cfg) */
	int channel;
	uint32_t store_id;
	bool own_clock; /* stamped by the daemon's clock, not the device's */
	size_t source;
};

/* A source whose devices stamp their own samples (MQTT with a time field):
 * how their clock compares with the host's. */
struct src_clock {
	bool device;
	struct pdm_lag lag;
	int64_t offset_ms, max_lag_ms; /* refreshed every tick */
	int64_t off_since_mono;        /* the offset beyond CLOCK_WARN_MS since; 0 = not */
	bool warned;
	int64_t warned_offset_ms, warned_mono;
};

struct engine {
	struct pdm_config *cfg;
	char store_path[4096];
	struct store *store;
	struct ingest *ingest;
	struct mb_conn **mb;
	size_t n_mb;
	/* Source names of connection i's groups: mb_gname[mb_gstart[i] + g]. */
	const char **mb_gname;
	size_t *mb_gstart;
	struct mqtt_client **mq; /* mq[0] is the [mqtt] broker: alerts and its sources */
	char **mq_uri;
	size_t n_mq;
	struct asset_rt *assets;
	size_t n_assets;
	struct sensor_map *smap;
	struct src_clock *srcs; /* per cfg source */
	struct trainer *trainer;
	char *password;
	char status_topic[512];
	char will_payload[256];

	int epfd, sfd, tfd;
	pthread_mutex_t ev_lock;
	int ev_fd;
	struct mq_event events[EVENT_CAP];
	size_t n_events;
	uint64_t events_lost;

	bool connected;
	bool status_dirty; /* P/status "online" not handed to the client yet */
	/* Outbox ids handed to the client and not answered yet. With a
	 * persistent session paho resends these itself after a reconnect, so
	 * the pump must not send them a second time. */
	int64_t flying[FLYING_CAP];
	int inflight;
	bool stop;
	int exit_code;
	int64_t started_ms;
	uint64_t wd_usec;
	int64_t last_wd_ms, last_status_ms, last_control_ms;
	struct pdm_sample *pop_buf;
	size_t pop_cap;
	struct pdm_clock_watch clock;
	struct pdm_ratelimit clock_rl;
	struct pdm_ratelimit conn_rl; /* broker connected / lost lines */
	uint64_t clock_steps, fenced;
	int64_t last_step_ms; /* signed: how far the last step moved the clock */
};

/* The longest an asset that mixes host- and device-stamped samples holds
 * its windows back for the devices' ones (a minute of every host-stamped
 * channel is queued meanwhile). */
#define MIXED_WAIT_MAX_MS 60000

/* How long such an asset's windows wait: the lag, up to MIXED_WAIT_MAX_MS
 * (0 for an asset with no device-stamped sensor). */
static inline int64_t mixed_wait(const struct asset_rt *a)
{
	int64_t lag = a->mixed_lag_ms;
	return lag <= 0 ? 0 : lag < MIXED_WAIT_MAX_MS ? lag : MIXED_WAIT_MAX_MS;
}

/* The asset's "now" for its windows, no_data and training: the host's clock,
 * or its devices' (see refresh_clocks in engine.c). */
static inline int64_t asset_now(const struct asset_rt *a, int64_t wall)
{
	return a->own_clock ? wall - mixed_wait(a) : wall - a->clock_lag_ms;
}

/* A time on the asset's clock, on the host's (for people to read). */
static inline int64_t asset_to_host(const struct asset_rt *a, int64_t t)
{
	return a->own_clock ? t : t + a->clock_lag_ms;
}

struct nn_model;
struct window_cfg;

/* The open episode, if the newest one is still open. */
static inline struct episode *engine_open_episode(struct asset_rt *a)
{
	struct episode *ep = a->n_episodes ? &a->episodes[a->n_episodes - 1] : NULL;
	return ep && ep->span.end_ms == INT64_MAX ? ep : NULL;
}

/* engine_train.c: when assets train, what a new model changes, and
 * learning (learn.h). */
void engine_fill_window_cfg(const struct cfg_asset *ac, struct window_cfg *w);
/* The model in use from now on; its retained message is marked for the
 * main loop to publish (flush_retained). */
void engine_install_model(struct asset_rt *a, struct nn_model *m, uint32_t version);
void engine_schedule_training(struct engine *e, int64_t now);
void engine_handle_train_results(struct engine *e);
/* After the asset's model is loaded at setup: learning that was on goes on. */
void engine_load_learning(struct asset_rt *a);
/* How long each sensor may stand still (detector_stuck), as the last promoted
 * training measured it: kept in the store, by sensor name, across restarts. */
void engine_load_still(struct asset_rt *a);
void engine_relearn_start(struct asset_rt *a, int64_t since, int64_t mark);
void engine_learning_shift(struct asset_rt *a, int64_t step);

/* engine_status.c: status.json in the state directory, what pdmctl status
 * reads (the main loop writes it every STATUS_FILE_MS). */
void engine_write_status(struct engine *e, int64_t now);

#endif
