/*
 * plantsim_modbus.h - plantsim's register map and its Modbus TCP server.
 *
 * Register map: Modbus-fed asset k (0-based, in --assets order) owns the
 * block of holding registers starting at 100*k; the same values are
 * mirrored in the input registers at the same addresses. Addresses are
 * 0-based (a manual's "40101" is hr:100). Unit id 1 (a TCP server answers
 * any unit id).
 *
 *   offset  sensor          type     order  scale  unit
 *   +0      vibration_rms   float32  abcd   1      mm/s
 *   +2      flow            float32  abcd   1      m3/h
 *   +4      pressure        float32  cdab   1      bar
 *   +6      current         float32  cdab   1      A
 *   +8      speed           uint16   -      1      rpm
 *   +9      bearing_temp    int16    -      0.1    degC
 *   +10     motor_temp      int16    -      0.1    degC
 *   +11     status          uint16   -      -      bit 0: running
 *   +12     heartbeat       uint32   abcd   1      tick counter (wraps)
 *
 * The registers are read-only: write requests get ILLEGAL FUNCTION.
 */
#ifndef PLANTSIM_MODBUS_H
#define PLANTSIM_MODBUS_H

#include <stdint.h>

#include "mb_decode.h"
#include "plantsim_model.h"

#define PS_MB_STRIDE 100  /* registers between two assets' blocks */
#define PS_MB_BLOCK 14    /* registers used per asset */
#define PS_MB_STATUS 11
#define PS_MB_HEARTBEAT 12

struct ps_reg {
	enum ps_sensor sensor;
	int offset;
	enum mb_type type;
	enum mb_order order;
	double scale;
};

/* The map above, one entry per sensor, in sensor order. */
extern const struct ps_reg ps_regmap[PS_NSENSORS];

/*
 * Encodes one asset's values and the tick counter into its register block
 * regs[PS_MB_BLOCK], and writes into `decoded` the values a client gets
 * back by decoding the registers per the map (raw * scale): what --print
 * reports. Out-of-range values saturate at the type's limits.
 */
void ps_mb_encode(const struct ps_asset *a, uint32_t tick, uint16_t *regs,
		  double decoded[PS_NSENSORS]);

struct ps_mbserver;

/*
 * Listens on 127.0.0.1:port (0 = a free port) for `nassets` asset blocks.
 * Returns NULL and logs why on failure.
 */
struct ps_mbserver *ps_mbserver_new(int port, int nassets);
/*
 * Starts serving from a thread of its own (select loop, up to 64 clients at
 * once). Call it once every block holds data: clients that connected
 * earlier wait in the listen backlog rather than read zeros. Returns 0 or a
 * negative errno.
 */
int ps_mbserver_start(struct ps_mbserver *s);
/* The port actually listened on. */
int ps_mbserver_port(const struct ps_mbserver *s);
/* Replaces asset k's block atomically with respect to client requests. */
void ps_mbserver_update(struct ps_mbserver *s, int k, const uint16_t *regs);
/* Stops the thread, closes every connection and frees. NULL is fine. */
void ps_mbserver_free(struct ps_mbserver *s);

#endif
