#!/usr/bin/env bash
# Creates .build/venv (under the repo root) with pykickstart for the differential
# test and the benchmark comparison. Idempotent: quick when already done.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.build/venv
req=tests/pykickstart/requirements.txt
stamp=$venv/.requirements.installed
if [[ -x $venv/bin/python && -f $stamp ]] && cmp -s "$req" "$stamp"; then
  exit 0
fi
mkdir -p .build
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
"$venv/bin/python" -c 'import pykickstart, sys; sys.path.insert(0, "tests/pykickstart"); import mic_handler'
cp "$req" "$stamp"
echo "pykickstart venv ready: $venv"
