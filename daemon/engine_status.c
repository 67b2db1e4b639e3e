/*
 * engine_status.c - status.json, the daemon's report for pdmctl: every
 * asset's state, model and clock, every source's counters, the store's and
 * the process's memory figures. Written atomically (a temporary file
 * renamed over it), so a reader never sees half of it.
 */
#include <cjson/cJSON.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "detector.h"
#include "engine_int.h"
#include "ingest.h"
#include "mb_conn.h"
#include "mqtt_client.h"
#include "pdm_config.h"
#include "store.h"
#include "trainer.h"

/* Memory, so that a long run tells growth that piles up (heap_in_use) from
 * memory the allocator keeps for reuse (heap_free) and from caches. */
static void add_memory(cJSON *o, int64_t sqlite_bytes)
{
	long long rss = -1, anon = -1;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %lld", &rss) != 1)
			sscanf(line, "RssAnon: %lld", &anon);
	if (f)
		fclose(f);
	struct mallinfo2 mi = mallinfo2();
	cJSON *m = cJSON_AddObjectToObject(o, "memory");
	if (rss >= 0)
		cJSON_AddNumberToObject(m, "rss_kib", (double)rss);
	if (anon >= 0)
		cJSON_AddNumberToObject(m, "anon_kib", (double)anon);
	cJSON_AddNumberToObject(m, "heap_in_use_kib", (double)((mi.uordblks + mi.hblkhd) / 1024));
	cJSON_AddNumberToObject(m, "heap_free_kib", (double)(mi.fordblks / 1024));
	cJSON_AddNumberToObject(m, "sqlite_kib", (double)(sqlite_bytes / 1024));
}

void engine_write_status(struct engine *e, int64_t now)
{
	char path[4096], tmp[4200], ts[PDM_ISO8601_LEN];
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "host", e->cfg->daemon.host);
	cJSON_AddNumberToObject(o, "pid", getpid());
	cJSON_AddStringToObject(o, "version", PDM_VERSION);
	cJSON_AddStringToObject(o, "started", pdm_iso8601(e->started_ms, ts, sizeof(ts)));
	cJSON_AddStringToObject(o, "updated", pdm_iso8601(now, ts, sizeof(ts)));
	cJSON_AddBoolToObject(o, "mqtt_connected", e->connected);
	cJSON_AddNumberToObject(o, "clock_steps", (double)e->clock_steps);
	if (e->clock_steps > 0) {
		cJSON_AddNumberToObject(o, "last_clock_step_ms", (double)e->last_step_ms);
		cJSON_AddNumberToObject(o, "samples_fenced", (double)e->fenced);
	}
	cJSON *assets = cJSON_AddArrayToObject(o, "assets");
	for (size_t i = 0; i < e->n_assets; i++) {
		struct asset_rt *a = &e->assets[i];
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "asset", a->cfg->name);
		cJSON_AddStringToObject(j, "state", detector_state_name(detector_state(a->det)));
		double sc = detector_last_score(a->det);
		if (isfinite(sc))
			cJSON_AddNumberToObject(j, "score", sc);
		cJSON_AddNumberToObject(j, "model_version", detector_model_version(a->det));
		if (a->trained_at_ms > 0)
			cJSON_AddStringToObject(j, "trained_at",
						pdm_iso8601(a->trained_at_ms, ts, sizeof(ts)));
		cJSON_AddNumberToObject(j, "windows", (double)detector_trainable_windows(a->det));
		if (a->cfg->retrain_ms > 0 && detector_has_model(a->det))
			cJSON_AddStringToObject(j, "next_retrain",
						pdm_iso8601(a->retrain_base_ms + a->cfg->retrain_ms,
							    ts, sizeof(ts)));
		cJSON_AddBoolToObject(j, "training", trainer_busy(e->trainer, i));
		/* learning an episode taken as normal (pdmctl normal), no alerts */
		if (a->relearn_since_ms > 0)
			cJSON_AddStringToObject(j, "relearning_since",
						pdm_iso8601(a->relearn_since_ms, ts, sizeof(ts)));
		/* learning (a first model, or relearning): alerts are on again
		 * by then at the latest; on the host's clock */
		if (a->learning && a->learn.until_ms != INT64_MAX)
			cJSON_AddStringToObject(j, "learning_until",
						pdm_iso8601(asset_to_host(a, a->learn.until_ms), ts,
							    sizeof(ts)));
		/* and not before this (learn_min: the first model's first day) */
		if (a->learning && a->learn.min_ms > asset_now(a, now))
			cJSON_AddStringToObject(j, "learning_not_before",
						pdm_iso8601(asset_to_host(a, a->learn.min_ms), ts,
							    sizeof(ts)));
		struct window_stats ws;
		detector_window_stats(a->det, &ws);
		/* samples older than their sensor's newest one: a clock or a
		 * gateway that goes back in time */
		cJSON_AddNumberToObject(j, "late_samples", (double)ws.late_samples);
		/* samples that came after their point was decided: stamped by
		 * a device whose clock is behind the daemon's, or delayed */
		cJSON_AddNumberToObject(j, "overdue_samples", (double)ws.overdue_samples);
		/* "device": every sample carries its device's time, and the asset
		 * runs on that clock, clock_lag_ms behind the host's */
		cJSON_AddStringToObject(j, "clock", a->own_clock ? "host" : "device");
		if (!a->own_clock)
			cJSON_AddNumberToObject(j, "clock_lag_ms", (double)a->clock_lag_ms);
		/* "host" with some samples stamped by devices: how long the
		 * windows wait for those */
		else if (a->mixed_lag_ms > 0)
			cJSON_AddNumberToObject(j, "clock_wait_ms", (double)mixed_wait(a));
		/* sensors without a good value for the no-data time: the
		 * transmitter to check, and since when */
		const bool *miss;
		const int64_t *good;
		if (detector_missing(a->det, &miss, &good) > 0) {
			cJSON *m = cJSON_AddArrayToObject(j, "missing_sensors");
			for (size_t c = 0; m && c < a->cfg->n_sensors; c++) {
				if (!miss[c])
					continue;
				cJSON *s = cJSON_CreateObject();
				cJSON_AddStringToObject(s, "sensor", a->channel_names[c]);
				if (good[c] != INT64_MIN)
					cJSON_AddStringToObject(
						s, "last_good",
						pdm_iso8601(asset_to_host(a, good[c]), ts, sizeof(ts)));
				else
					cJSON_AddNullToObject(s, "last_good");
				cJSON_AddItemToArray(m, s);
			}
		}
		/* sensors whose value stands exactly still too long: frozen */
		const bool *stuck;
		const int64_t *since;
		const double *sval;
		if (detector_stuck(a->det, &stuck, &since, &sval) > 0) {
			cJSON *m = cJSON_AddArrayToObject(j, "stuck_sensors");
			for (size_t c = 0; m && c < a->cfg->n_sensors; c++) {
				if (!stuck[c])
					continue;
				cJSON *s = cJSON_CreateObject();
				cJSON_AddStringToObject(s, "sensor", a->channel_names[c]);
				cJSON_AddNumberToObject(s, "value", sval[c]);
				cJSON_AddStringToObject(
					s, "since",
					pdm_iso8601(asset_to_host(a, since[c]), ts, sizeof(ts)));
				cJSON_AddItemToArray(m, s);
			}
		}
		if (a->last_alert_id[0]) {
			cJSON_AddStringToObject(j, "last_alert", a->last_alert_id);
			cJSON_AddStringToObject(j, "last_alert_ts",
						pdm_iso8601(a->last_alert_ms, ts, sizeof(ts)));
		}
		/* the open episode with its peak so far: what an operator wants
		 * next to the state (times on the asset's clock, as in the payloads) */
		struct alert_persist ap;
		detector_alert_persist(a->det, &ap);
		alert_add_open_episode(j, a->cfg->name, &ap, a->channel_names, a->channel_units);
		cJSON_AddItemToArray(assets, j);
	}
	cJSON *sources = cJSON_AddArrayToObject(o, "sources");
	for (size_t i = 0; i < e->n_mb; i++) {
		struct mb_stats st;
		for (size_t g = 0; mb_conn_stats(e->mb[i], g, &st) == 0; g++) {
			cJSON *j = cJSON_CreateObject();
			cJSON_AddStringToObject(j, "source", e->mb_gname[e->mb_gstart[i] + g]);
			cJSON_AddStringToObject(j, "type", "modbus");
			cJSON_AddBoolToObject(j, "connected", st.connected);
			cJSON_AddNumberToObject(j, "requests", (double)st.requests);
			cJSON_AddNumberToObject(j, "errors", (double)st.errors);
			cJSON_AddNumberToObject(j, "timeouts", (double)st.timeouts);
			cJSON_AddNumberToObject(j, "exceptions", (double)st.exceptions);
			cJSON_AddNumberToObject(j, "reconnects", (double)st.reconnects);
			if (st.last_success_ms > 0)
				cJSON_AddStringToObject(j, "last_success",
							pdm_iso8601(st.last_success_ms, ts, sizeof(ts)));
			cJSON_AddNumberToObject(j, "latency_avg_ms", st.latency_avg_ms);
			cJSON_AddItemToArray(sources, j);
		}
	}
	for (size_t i = 0; i < e->n_mq; i++) {
		struct mqtt_stats st;
		mqtt_client_stats(e->mq[i], SIZE_MAX, &st);
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "source", e->mq_uri[i]);
		cJSON_AddStringToObject(j, "type", "mqtt");
		cJSON_AddBoolToObject(j, "connected", st.connected);
		cJSON_AddNumberToObject(j, "received", (double)st.received);
		cJSON_AddNumberToObject(j, "samples", (double)st.samples);
		cJSON_AddNumberToObject(j, "malformed", (double)(st.malformed + st.oversized +
								 st.non_utf8 + st.wrong_type));
		cJSON_AddNumberToObject(j, "reconnects", (double)st.reconnects);
		cJSON_AddNumberToObject(j, "published", (double)st.published);
		cJSON_AddNumberToObject(j, "acked", (double)st.acked);
		cJSON_AddNumberToObject(j, "publish_failed", (double)st.publish_failed);
		/* non-zero only after the MQTT library's session went bad (docs/reliability.md) */
		cJSON_AddNumberToObject(j, "mismatched", (double)st.mismatched);
		cJSON_AddNumberToObject(j, "rebuilds", (double)st.rebuilds);
		cJSON_AddNumberToObject(j, "broken_writes", (double)st.broken_writes);
		cJSON_AddNumberToObject(j, "ack_timeouts", (double)st.ack_timeouts);
		cJSON_AddItemToArray(sources, j);
	}
	/* Sources that stamp their own samples: their clock against the host's
	 * (offset_ms > 0: ahead) and how late their samples can arrive. */
	cJSON *clocks = cJSON_AddArrayToObject(o, "device_clocks");
	for (size_t i = 0; i < e->cfg->n_sources; i++) {
		const struct src_clock *sc = &e->srcs[i];
		if (!sc->device || sc->lag.samples == 0)
			continue;
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "source", e->cfg->sources[i].name);
		cJSON_AddNumberToObject(j, "offset_ms", (double)sc->offset_ms);
		cJSON_AddNumberToObject(j, "max_delay_ms", (double)(sc->max_lag_ms + sc->offset_ms));
		cJSON_AddNumberToObject(j, "samples", (double)sc->lag.samples);
		cJSON_AddItemToArray(clocks, j);
	}
	struct store_stats ss;
	store_stats(e->store, &ss);
	cJSON *sj = cJSON_AddObjectToObject(o, "store");
	cJSON_AddNumberToObject(sj, "appended", (double)ss.appended);
	cJSON_AddNumberToObject(sj, "dropped_full", (double)ss.dropped_full);
	cJSON_AddNumberToObject(sj, "evicted", (double)ss.evicted);
	cJSON_AddNumberToObject(sj, "write_errors", (double)ss.write_errors);
	struct ingest_stats is;
	ingest_stats(e->ingest, &is);
	cJSON_AddNumberToObject(sj, "ingest_dropped", (double)is.dropped);
	add_memory(o, ss.sqlite_bytes);

	char *s = cJSON_Print(o);
	cJSON_Delete(o);
	if (!s)
		return;
	snprintf(path, sizeof(path), "%s/status.json", e->cfg->daemon.state_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f) {
		bool ok = fputs(s, f) >= 0;
		ok = fclose(f) == 0 && ok;
		if (!ok || rename(tmp, path) < 0)
			unlink(tmp);
	}
	free(s);
}
