#!/usr/bin/env python3
"""Usage: judge.py < LINES

Reads one kickstart command line per input line and judges each on its own
with pykickstart + mic's extensions (mic_handler.py, a fresh instance of the
command per line),
printing one JSON object per input line, in order:

  {"verdict": "ok" | "error", "message": "..." (the error, or ""),
   "warnings": [...]}

"error" is any error pykickstart records for the line (mic stopped on those);
pykickstart's warnings leave the verdict "ok", as they left mic going. Used by
img-client/tests/pykickstart_cases.rs with tests/pykickstart/cases.jsonl.
"""

import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mic_handler  # noqa: E402


def judge(parser, line):
    # A fresh handler costs ~50 ms; fresh instances of the commands a line used are
    # enough (data lists and the `seen` that conflict checks read live on them).
    for name, cmd in list(parser.handler.commands.items()):
        if cmd is not None and getattr(cmd, "seen", False):
            parser.handler.resetCommand(name)
    parser.ks_errors = []
    parser.errorsCount = 0
    fatal = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser.readKickstartFromString(line + "\n")
        except Exception as e:  # pylint: disable=broad-except
            fatal = str(e).strip() or type(e).__name__
    errors = list(parser.ks_errors) + ([fatal] if fatal else [])
    return {
        "verdict": "error" if errors else "ok",
        "message": "; ".join(errors),
        "warnings": [str(w.message) for w in caught],
    }


def main():
    parser = mic_handler.make_parser()
    for raw in sys.stdin:
        print(json.dumps(judge(parser, raw.rstrip("\n")), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
