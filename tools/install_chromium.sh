#!/usr/bin/env bash
# Headless Chromium for the book's browser tests (tests/browser), from the distribution's
# packages. Does nothing when `chromium` or `chromium-browser` is already on PATH (or $CHROMIUM
# names one). Installs with apt-get (Debian/Ubuntu), as root or through sudo; elsewhere it says
# what to install.
set -euo pipefail

if [[ -n "${CHROMIUM:-}" ]] || command -v chromium >/dev/null 2>&1 \
        || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: Chromium not found and apt-get is not available: install Chromium from your" \
         "distribution's packages (or set CHROMIUM=/path/to/chromium) for tests/browser" >&2
    exit 1
fi
run() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
echo "installing Chromium from the distribution's packages (apt-get install chromium)"
run apt-get update -qq
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1 || {
    echo "error: apt-get installed no 'chromium' command" >&2; exit 1; }
