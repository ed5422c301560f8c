#!/usr/bin/env bash
# Headless Chromium + chromedriver for the report's browser test (Debian packages). Idempotent.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "setup: $(chromium --version 2>/dev/null | head -1) and chromedriver present" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: chromium/chromedriver missing and no apt-get to install them; install Chromium and its driver" >&2
    exit 1
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "setup: chromium missing; run as root (or with sudo) to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi
echo "setup: installing Debian's chromium and chromium-driver" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || {
    $SUDO apt-get update >/dev/null 2>&1
    $SUDO apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null
}
echo "setup: $(chromium --version 2>/dev/null | head -1) ready" >&2
