#!/usr/bin/env bash
# Creates .build/venv (under the repo root) with pykickstart for the differential tests
# (corpus and pykickstart-cases) and the benchmark comparison. Idempotent: quick when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/venv .build/venv tests/pykickstart/requirements.txt
.build/venv/bin/python -c 'import pykickstart, sys; sys.path.insert(0, "tests/pykickstart"); import mic_handler'
