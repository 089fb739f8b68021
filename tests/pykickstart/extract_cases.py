#!/usr/bin/env python3
"""Extracts pykickstart's own command test cases into cases.jsonl.

Usage (needs a pykickstart git checkout or bare mirror, and the venv):

  .build/venv/bin/python tests/pykickstart/extract_cases.py GIT_DIR [OUT]

  e.g. GIT_DIR=/work/.mirror/pykickstart+pykickstart/repo (a bare git dir: its
  HEAD's tests/ tree is exported to a temporary folder). OUT defaults to
  tests/pykickstart/cases.jsonl, which is committed: CI has no mirror.

How: tests/baseclass.py's CommandTest.assert_parse / assert_parse_error (and
ParserTest's) are replaced by recorders of (line, "ok" | "error"); every other
assert* becomes a no-op, so one failing expectation does not stop the rest of a
test. `with self.assertRaises(...)` around an assert_parse records "error"
(a warning class there records "ok": the line parses). Each *_TestCase class
of tests/commands/*.py runs under the handler its name picks (F34_TestCase:
F34); of the classes of one file, only the cases of the newest Fedora and the
newest RHEL class that test a given command are kept (newer classes mostly call
super().runTest(), so the older lines are in them; where the newest does not,
e.g. raid's F43, only its own lines are kept).

Kept: single-line command cases. Skipped: multi-line kickstart strings and
section lines (%packages, %pre...): the harness judges one command line at a
time; lines built from a mocked parse result. Duplicate (command, line) pairs
are written once (the Fedora class's expectation first).

Each output line: {"command", "line", "expect": "ok"|"error", "source"}.
The expectation is what pykickstart's tests say for that version; the
differential test asks pykickstart + mic's handler (judge.py) for the live verdict.
"""

import contextlib
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))


class Recorder:
    def __init__(self):
        self.cases = []  # (family, version, line, expect)
        self.family = "F"
        self.version = 0
        self.forced = None  # "error" inside assertRaises(...Error)

    def add(self, text, expect):
        if not isinstance(text, str):
            return
        text = text.strip()
        # A line built from a mocked parse result is no kickstart line.
        if not text or "\n" in text or text.startswith("%") or "MagicMock" in text:
            return
        self.cases.append((self.family, self.version, text, self.forced or expect))


REC = Recorder()


def _patch(baseclass):
    def record_ok(self, text, *args, **kwargs):
        REC.add(text, "ok")
        return mock.MagicMock()

    def record_error(self, text, *args, **kwargs):
        REC.add(text, "error")

    @contextlib.contextmanager
    def raises(exc):
        is_error = isinstance(exc, type) and not issubclass(exc, Warning)
        before = REC.forced
        if is_error:
            REC.forced = "error"
        try:
            yield mock.MagicMock()
        except Exception:  # pylint: disable=broad-except
            pass
        finally:
            REC.forced = before

    def assert_raises(self, exc, *args, **kwargs):
        if args and callable(args[0]):
            with raises(exc):
                args[0](*args[1:], **kwargs)
            return None
        return raises(exc)

    def no_op(self, *args, **kwargs):
        return mock.MagicMock()

    for cls in (baseclass.CommandTest, baseclass.ParserTest):
        for name in dir(unittest.TestCase):
            if name.startswith("assert") or name == "fail":
                setattr(cls, name, no_op)
        cls.assertRaises = assert_raises
        cls.assertRaisesRegex = lambda self, exc, _regex, *a, **k: assert_raises(self, exc, *a, **k)
        cls.assertWarns = assert_raises
        cls.assertWarnsRegex = lambda self, exc, _regex, *a, **k: assert_raises(self, exc, *a, **k)
        cls.assert_parse = record_ok
        cls.assert_parse_error = record_error


def _version_of(cls):
    from pykickstart.version import stringToVersion

    try:
        return stringToVersion(cls.__name__.split("_")[0])
    except Exception:  # pylint: disable=broad-except
        return None


def _run(test_cls):
    names = [n for n in dir(test_cls) if n == "runTest" or n.startswith("test")]
    for name in names:
        if not callable(getattr(test_cls, name, None)):
            continue
        try:
            test = test_cls(name)
            test.setUp()
            try:
                getattr(test, name)()
            finally:
                test.tearDown()
        except Exception:  # pylint: disable=broad-except
            if os.environ.get("EXTRACT_DEBUG"):
                import traceback
                traceback.print_exc()


def extract(tests_root):
    sys.path.insert(0, tests_root)
    import warnings

    from tests import baseclass

    _patch(baseclass)
    out = []
    seen = set()
    cmd_dir = os.path.join(tests_root, "tests", "commands")
    for file in sorted(os.listdir(cmd_dir)):
        if not file.endswith(".py") or file == "__init__.py":
            continue
        source = "tests/commands/" + file
        try:
            module = importlib.import_module("tests.commands." + file[:-3])
        except Exception as e:  # pylint: disable=broad-except
            print("skip %s: %s" % (source, e), file=sys.stderr)
            continue
        per_class = []
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not cls.__name__.endswith("_TestCase") or cls.__module__ != module.__name__:
                continue
            if not issubclass(cls, (baseclass.CommandTest, baseclass.ParserTest)):
                continue
            version = _version_of(cls)
            if version is None:
                continue
            family = "RHEL" if cls.__name__.startswith("RHEL") else "F"
            REC.cases, REC.family, REC.version, REC.forced = [], family, version, None
            with warnings.catch_warnings():
                _run(cls)
            per_class.extend(REC.cases)
        # Newest Fedora and newest RHEL version per command word; Fedora's first (mic's
        # handler is built on DEVEL), so its expectation wins a duplicate line.
        newest = {}
        for family, version, line, _ in per_class:
            key = (family, line.split()[0])
            newest[key] = max(newest.get(key, 0), version)
        per_class.sort(key=lambda c: c[0] != "F")
        for family, version, line, expect in per_class:
            word = line.split()[0]
            if version != newest[(family, word)] or (word, line) in seen:
                continue
            seen.add((word, line))
            out.append({"command": word, "line": line, "expect": expect, "source": source})
    return out


def main(argv):
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    git_dir = argv[0]
    dest = argv[1] if len(argv) > 1 else os.path.join(HERE, "cases.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "--git-dir", git_dir, "archive", "HEAD", "tests"],
                                 check=True, stdout=subprocess.PIPE).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        cases = extract(tmp)
    with open(dest, "w", encoding="utf-8") as f:
        for case in cases:
            f.write(json.dumps(case, sort_keys=True) + "\n")
    print("%d cases written to %s" % (len(cases), dest), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
