#!/usr/bin/env bash
# Install the pinned nf-core tools into their own venv, .tools/nf-core-venv. Idempotent.
#
# nf-core tools are kept out of .venv on purpose: their dependencies (rich, textual,
# pydantic, ruamel, ...) would fight the exact pins of requirements.lock.
# The venv is keyed by the pinned version: a second run with that version already
# installed does nothing.
#
#   scripts/setup_nfcore.sh
#   .tools/nf-core-venv/bin/nf-core --version
#
# Environment overrides (optional):
#   PYTHON            interpreter for the venv (default: python3)
#   NFCORE_VERSION    nf-core release to install (default: the pin below)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
NFCORE_VERSION="${NFCORE_VERSION:-4.2.1}"
venv="$root/.tools/nf-core-venv"
stamp="$venv/.nf-core-version"

# (the venv must also still run: a venv made at another path, then moved, keeps that path in its scripts)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$NFCORE_VERSION" && -x "$venv/bin/nf-core" ]] \
   && "$venv/bin/python" -c 'import nf_core' 2>/dev/null && head -1 "$venv/bin/nf-core" | grep -q "^#!$venv/bin/python"; then
    echo "setup: nf-core $NFCORE_VERSION up to date ($venv)" >&2
    exit 0
fi
if [[ ! -x "$venv/bin/python" ]] || ! head -1 "$venv/bin/pip" 2>/dev/null | grep -q "^#!$venv/bin/python"; then
    rm -rf "$venv"
    echo "setup: creating $venv with $($PYTHON --version 2>&1)" >&2
    mkdir -p "$root/.tools"
    "$PYTHON" -m venv "$venv"
fi
echo "setup: installing nf-core==$NFCORE_VERSION into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "nf-core==$NFCORE_VERSION"
"$venv/bin/python" -m pip check >&2
got="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("nf-core"))')"
[[ "$got" == "$NFCORE_VERSION" ]] || { echo "setup: installed nf-core $got, wanted $NFCORE_VERSION" >&2; exit 1; }
echo "$NFCORE_VERSION" > "$stamp"
echo "setup: nf-core $got ready in $venv" >&2
