#!/usr/bin/env python3
"""Usage: pykickstart_time.py FILE [RUNS]

Times pykickstart (with mic's extensions, tests/pykickstart/mic_handler.py)
parsing FILE in-process: a fresh handler and parser per run, the file text read
once up front; only readKickstartFromString is timed (handler and parser
construction are not); best of RUNS (default 20) after one warm-up. Interpreter start-up
and imports are excluded. Prints the best time in milliseconds on stdout
(and the median on stderr).
"""

import os
import statistics
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "pykickstart"))
import mic_handler  # noqa: E402


def parse_once(text):
    """Returns (parser, seconds spent in readKickstartFromString only)."""
    parser = mic_handler.make_parser()  # handler set-up is not timed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        parser.readKickstartFromString(text)
        return parser, time.perf_counter() - t0


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        text = f.read()
    runs = int(argv[1]) if len(argv) > 1 else 20
    p, _ = parse_once(text)  # warm-up, and a sanity check
    if p.ks_errors:
        print("pykickstart errors: %s" % p.ks_errors[:3], file=sys.stderr)
        return 1
    times = []
    for _ in range(runs):
        times.append(parse_once(text)[1] * 1000.0)
    print("pykickstart: best %.2f ms, median %.2f ms over %d runs (%d packages)"
          % (min(times), statistics.median(times), runs, len(p.handler.packages.packageList)), file=sys.stderr)
    print("%.3f" % min(times))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
