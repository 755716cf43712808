#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver for tests/test_html_browser.py (the leaderboard
# web page in a real headless browser). A no-op when both are present. Never fails CI: without
# apt-get or root the browser test skips itself with a reason, and this script says so loudly.
set -u

if command -v chromium >/dev/null 2>&1 && [ -x /usr/bin/chromedriver ]; then
    echo "browser: chromium and chromedriver already installed ($(chromium --version 2>/dev/null))"
    exit 0
fi

loud() {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!! browser: $1"
    echo "!! tests/test_html_browser.py will be SKIPPED: the HTML leaderboard is not browser-tested"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
}

if ! command -v apt-get >/dev/null 2>&1; then
    loud "apt-get not found (not a Debian/Ubuntu machine); install chromium and chromedriver by hand"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        loud "not root and no password-less sudo; run: apt-get install chromium chromium-driver"
        exit 0
    fi
fi

echo "browser: installing chromium and chromium-driver with apt-get"
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -q >/dev/null \
    && $SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null; then
    echo "browser: installed $(chromium --version 2>/dev/null)"
else
    loud "apt-get install chromium chromium-driver failed (see the messages above)"
fi
exit 0
