#!/usr/bin/env bash
# What the Space's browser test (tests/test_space_browser.py) needs beyond the Python packages: Debian's chromium,
# which Playwright drives through executable_path (`playwright install` downloads a browser: not used).
# Idempotent and quiet; returns at once when chromium is already there. Without apt-get it says so and leaves the
# test to skip with its reason.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "space/ci_setup.sh: no apt-get here; install chromium at /usr/bin/chromium for the browser test" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
