#!/usr/bin/env bash
# The comparison tool of bench_sc.py, in its own venv (never in the project's): benchmarks/.venv-snap. Idempotent.
# 2.9.0 is the newest release for Python 3.11 (2.10 needs >= 3.12).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-snap"
SNAPATAC2_VERSION="${SNAPATAC2_VERSION:-2.9.0}"
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c "import snapatac2" 2>/dev/null; then
    echo "setup_snapatac2: $("$venv/bin/python" -c 'import snapatac2; print(snapatac2.__version__)') ready in $venv" >&2
    exit 0
fi
"${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "snapatac2==$SNAPATAC2_VERSION"
echo "setup_snapatac2: snapatac2 $SNAPATAC2_VERSION installed in $venv" >&2
