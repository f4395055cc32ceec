#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests (tests/studio/test_browser.py), once.
# Playwright drives it through executable_path=/usr/bin/chromium (`playwright install` needs
# a download that CI cannot make). Idempotent: does nothing when chromium is already there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium is missing and installing it needs root: apt-get install -y chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version >&2
