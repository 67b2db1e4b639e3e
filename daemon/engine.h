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

struct pdm_config;
struct engine;

/* Builds everything from cfg (the engine takes ownership of cfg). NULL on
 * failure, logged. */
struct engine *engine_new(struct pdm_config *cfg);
/* Runs until SIGTERM/SIGINT. Returns 0 after a clean stop. */
int engine_run(struct engine *e);
void engine_free(struct engine *e);

#endif
