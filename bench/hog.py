#!/usr/bin/env python3
"""A CPU hog that measures its own throughput: one busy process per CPU (or N), counting loop
iterations. SIGUSR1 prints `t=<seconds> n=<iterations so far>`; SIGTERM/SIGINT prints the same
and exits. bench/perf.sh uses it as "the machine's real work" next to a backup and takes the
rate between two marks."""
import multiprocessing as mp
import os
import signal
import sys
import time


def work(i, counts):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    n = 0
    while True:
        for _ in range(20000):
            n += 1
        counts[i] = n


def main():
    k = int(sys.argv[1]) if len(sys.argv) > 1 else os.cpu_count()
    counts = mp.Array("q", k, lock=False)
    procs = [mp.Process(target=work, args=(i, counts), daemon=True) for i in range(k)]
    start = time.monotonic()
    for p in procs:
        p.start()
    state = {"stop": False}

    def mark(*_):
        print(f"t={time.monotonic() - start:.3f} n={sum(counts)}", flush=True)

    def stop(*_):
        mark()
        state["stop"] = True

    signal.signal(signal.SIGUSR1, mark)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not state["stop"]:
        signal.pause()
    for p in procs:
        p.terminate()


if __name__ == "__main__":
    main()
