#!/usr/bin/env bash
# Puts the external programs the tests run against into .tools/ (git-ignored), from Debian's
# packages: promtool (package prometheus) checks the /metrics exposition. Unpacked, not
# installed, so no daemon starts and nothing outside the repository changes.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.tools
mkdir -p "$tools/bin"

fetch_deb() { # package → unpacked into $tools/pkg/<package>
  local package=$1 work
  work=$(mktemp -d)
  (cd "$work" && apt-get download "$package" >/dev/null 2>&1) || {
    [ "$(id -u)" = 0 ] || { echo "install-test-tools: cannot download $package (run apt-get update as root)" >&2; return 1; }
    apt-get update -qq >/dev/null
    (cd "$work" && apt-get download "$package" >/dev/null)
  }
  mkdir -p "$tools/pkg/$package"
  dpkg -x "$work"/*.deb "$tools/pkg/$package"
  rm -rf "$work"
}

if [ ! -x "$tools/bin/promtool" ]; then
  if command -v promtool >/dev/null; then
    ln -sf "$(command -v promtool)" "$tools/bin/promtool"
  else
    fetch_deb prometheus
    ln -sf "../pkg/prometheus/usr/bin/promtool" "$tools/bin/promtool"
  fi
fi
"$tools/bin/promtool" --version 2>&1 | head -1
