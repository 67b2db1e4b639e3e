/*
 * engine.h - `pdmd run`: the service's main loop.
 *
 * One thread owns all state: an epoll loop over a signalfd (SIGTERM,
 * SIGINT, SIGHUP), a timerfd tick, the ingest queue's eventfd (samples from
 * connector threads), the MQTT event mailbox (acknowledgements, connection
 * changes from paho's thread) and the trainer's result eventfd. Connector
 * threads, the store's writer thread and the trainer thread own their own
 * data and talk to the loop only through those queues.
 */
#ifndef PDM_ENGINE_H
#define PDM_ENGINE_H

#include <stddef.h>

struct pdm_config;
struct cfg_source;
struct mb_point;
struct mb_conn_cfg;
struct engine;

/* Checks model dimensions for cfg_set_check_dims() with nn's rules. */
int engine_check_dims(int kind, int C, int W, char *err, size_t len);

/* The Modbus connector's view of sensor q and of a Modbus source (groups
 * left empty): shared by `pdmd run` and `pdmd probe`. */
void engine_mb_point(const struct pdm_config *cfg, size_t q, struct mb_point *p);
void engine_mb_conn_cfg(const struct cfg_source *s, struct mb_conn_cfg *cc);

/* Builds everything from cfg (the engine takes ownership of cfg). NULL on
 * failure, logged. */
struct engine *engine_new(struct pdm_config *cfg);
/* Runs until SIGTERM/SIGINT. Returns 0 after a clean stop. */
int engine_run(struct engine *e);
void engine_free(struct engine *e);

#endif
