#!/usr/bin/python3
"""Peer of bench/window.c: the same windowing rules, vectorized with NumPy.

Reads the samples window_bench wrote (header n, C, interval, W, hop, hold;
then ts int64[n], channel int32[n], value float64[n], good uint8[n]),
resamples every channel onto the grid (last good sample at or before each
point, held for at most `hold` intervals, else a gap), cuts the hop-aligned
windows, and prints its rate and a checksum of the windows without gaps.
Only the processing is timed, not reading the file.
"""
import sys
import time

import numpy as np


def run(ts, ch, val, good, C, I, W, hop, hold):
    hold_ms = hold * I
    k0 = -((-int(ts[0])) // I)
    last = np.array([ts[ch == c].max() for c in range(C)])
    limit = max(int(last.min()), int(ts.max()) - hold_ms)
    k_end = (limit - 1) // I
    k = np.arange(k0, k_end + 1, dtype=np.int64)
    t = k * I
    vals = np.empty((C, len(k)), dtype=np.float32)
    for c in range(C):
        sel = (ch == c) & (good != 0)
        tg, vg = ts[sel], val[sel]
        idx = np.searchsorted(tg, t, side="right") - 1
        has = idx >= 0
        idx0 = np.where(has, idx, 0)
        ok = has & (t - tg[idx0] <= hold_ms)
        vals[c] = np.where(ok, vg[idx0], np.nan).astype(np.float32)
    gap = np.isnan(vals).any(axis=0)
    gcum = np.concatenate(([0], np.cumsum(gap)))
    ends = np.nonzero((k % hop == 0) & (np.arange(len(k)) >= W - 1))[0]
    wgap = gcum[ends + 1] - gcum[ends + 1 - W] > 0
    ok_ends = ends[~wgap]
    total = 0.0
    offs = np.arange(W)
    for i in range(0, len(ok_ends), 4096):
        e = ok_ends[i:i + 4096]
        x = vals[:, (e - W + 1)[:, None] + offs]  # (C, n, W): the windows, cut
        total += float(x.astype(np.float64).sum())
    return len(ends), len(ok_ends), total


def main():
    path = sys.argv[1]
    with open(path, "rb") as f:
        hdr = np.frombuffer(f.read(48), dtype=np.int64)
        n, C, I, W, hop, hold = (int(v) for v in hdr)
        ts = np.frombuffer(f.read(8 * n), dtype=np.int64)
        ch = np.frombuffer(f.read(4 * n), dtype=np.int32)
        val = np.frombuffer(f.read(8 * n), dtype=np.float64)
        good = np.frombuffer(f.read(n), dtype=np.uint8)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        nwin, nok, total = run(ts, ch, val, good, C, I, W, hop, hold)
        dt = time.perf_counter() - t0
        best = max(best, n / dt)
    print(f"numpy_window_samples_per_s {best:.0f} samples/s")
    print(f"numpy_window_windows_ok {nok} windows")
    print(f"numpy_window_windows {nwin} windows")
    print(f"numpy_window_checksum {total:.6f} sum")


if __name__ == "__main__":
    main()
