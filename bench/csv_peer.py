#!/usr/bin/python3
"""Peer for bench/csv: the same file read with Python's csv module, every time
cell and value converted (int ms or datetime.fromisoformat, float with an
optional decimal comma). Prints `python_csv_<label>_cells_per_s VALUE cells/s`."""
import csv
import datetime
import sys
import time


def main():
    path, label, delim, decimal_comma = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    t0 = time.perf_counter()
    cells = 0
    with open(path, newline="") as f:
        rd = csv.reader(f, delimiter=delim)
        next(rd)
        for row in rd:
            t = row[0]
            if t.isdigit():
                int(t)
            else:
                datetime.datetime.fromisoformat(t)
            for v in row[1:]:
                float(v.replace(",", ".") if decimal_comma else v)
            cells += len(row)
    dt = time.perf_counter() - t0
    print(f"python_csv_{label}_cells_per_s {cells / dt:.0f} cells/s")


main()
