#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/test_browser.py), installed when it is missing and
# this runs as root with apt-get. It never fails the build: without Chromium the browser tests are
# skipped, and both this script and pytest's summary say so loudly.
set -u
if [ -n "${HATD_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "*** Chromium is missing and cannot be installed here (needs root and apt-get):" \
         "the browser tests will be SKIPPED. Install chromium or set HATD_CHROMIUM. ***" >&2
    exit 0
fi
echo "Installing Debian's chromium for the browser tests (once)..."
log=$(mktemp)
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "*** Could not install chromium (log: $log): the browser tests will be SKIPPED. ***" >&2
fi
exit 0
