#!/usr/bin/env bash
# Create .venv with the exact pins of requirements.lock and install scfan (editable). Idempotent.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3}"
venv="$root/.venv"
stamp="$venv/.scfan-lock.sha256"
want="$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/scfan" ]]; then
    echo "setup: python environment up to date ($venv)" >&2
    exit 0
fi
if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup: creating $venv with $($PYTHON --version 2>&1)" >&2
    "$PYTHON" -m venv "$venv"
fi
echo "setup: installing pinned packages from requirements.lock" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
"$venv/bin/python" -m pip check >&2
echo "$want" > "$stamp"
echo "setup: $("$venv/bin/scfan" --version) ready in $venv" >&2
