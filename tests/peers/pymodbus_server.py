#!/usr/bin/python3
"""Independent Modbus TCP server (pymodbus 3.0) for the connector's decoding tests.

usage: pymodbus_server.py --port N

Values are encoded here with Python's struct module, independently of our C
encoder, so a wrong word order on either side shows up as a test failure.
Layout (0-based addresses, unit 1; any unit is answered):
  hr 0,2,4,6      float32 -1234.5     in abcd, cdab, badc, dcba
  hr 10,14,18,22  float64 3.141592653589793 in abcd, cdab, badc, dcba
  hr 30,32,34,36  int32 -123456789    in abcd, cdab, badc, dcba
  hr 40,42,44,46  uint32 4000000000   in abcd, cdab, badc, dcba
  hr 50,54,58,62  int64 -1234567890123 in abcd, cdab, badc, dcba
  hr 70,74,78,82  uint64 12345678901234567 in abcd, cdab, badc, dcba
  hr 90           int16 -1234 (read with scale 0.1 -> -123.4)
  hr 91           uint16 65000
  hr 92           float32 NaN (abcd)
  ir 0            int16 2500 (scale 0.01 -> 25.0)
  ir 1            uint16 40000
  coil 0..7       1 0 1 1 0 0 1 0
  di 0..7         0 1 1 0 1 0 0 1
"""
import argparse
import asyncio
import logging
import math
import struct
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server import StartAsyncTcpServer


def words(fmt, value, order):
    """Registers for `value` packed big-endian with `fmt`, then reordered.

    abcd: as packed; cdab: word order reversed; badc: bytes swapped inside
    each word; dcba: both (the whole value little-endian)."""
    raw = struct.pack(">" + fmt, value)
    w = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if order in ("cdab", "dcba"):
        w.reverse()
    if order in ("badc", "dcba"):
        w = [x[::-1] for x in w]
    return [int.from_bytes(x, "big") for x in w]


ORDERS = ("abcd", "cdab", "badc", "dcba")


def build_hr():
    hr = [0] * 200

    def put(addr, regs):
        hr[addr:addr + len(regs)] = regs

    for i, o in enumerate(ORDERS):
        put(0 + 2 * i, words("f", -1234.5, o))
        put(10 + 4 * i, words("d", math.pi, o))
        put(30 + 2 * i, words("i", -123456789, o))
        put(40 + 2 * i, words("I", 4000000000, o))
        put(50 + 4 * i, words("q", -1234567890123, o))
        put(70 + 4 * i, words("Q", 12345678901234567, o))
    put(90, words("h", -1234, "abcd"))
    put(91, words("H", 65000, "abcd"))
    put(92, words("f", float("nan"), "abcd"))
    return hr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    # pymodbus 3.0 logs every client disconnect as an ERROR ("Handler for
    # stream ... has been canceled"); only real failures should show.
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    ir = [0] * 200
    ir[0] = 2500
    ir[1] = 40000
    coils = [1, 0, 1, 1, 0, 0, 1, 0] + [0] * 192
    di = [0, 1, 1, 0, 1, 0, 0, 1] + [0] * 192
    # zero_mode=True: request address 0 is block index 0 (pymodbus adds 1 otherwise).
    slave = ModbusSlaveContext(hr=ModbusSequentialDataBlock(0, build_hr()),
                               ir=ModbusSequentialDataBlock(0, ir),
                               co=ModbusSequentialDataBlock(0, coils),
                               di=ModbusSequentialDataBlock(0, di),
                               zero_mode=True)
    ctx = ModbusServerContext(slaves=slave, single=True)
    print(f"ready {args.port}", flush=True)
    print(f"pymodbus server on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    asyncio.run(StartAsyncTcpServer(context=ctx, address=("127.0.0.1", args.port),
                                    allow_reuse_address=True))


if __name__ == "__main__":
    main()
