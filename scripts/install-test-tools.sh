#!/usr/bin/env bash
# Puts the external programs the tests run against into .tools/ (git-ignored), from Debian's
# packages: promtool (package prometheus) checks the /metrics exposition; redis-server backs the
# Redis async queue's tests. Unpacked, not installed, so no daemon starts and nothing outside the
# repository changes.
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

# Debian's redis-server package holds only a symlink: redis-tools' redis-check-rdb is a
# multi-call binary that runs as the server when argv[0] names redis-server, hence `exec -a`.
if [ ! -x "$tools/bin/redis-server" ]; then
  if command -v redis-server >/dev/null; then
    ln -sf "$(command -v redis-server)" "$tools/bin/redis-server"
  else
    for package in redis-tools libjemalloc2 liblzf1; do fetch_deb "$package"; done
    # The wrapper finds the packages next to itself, so .tools/ still works after a move or copy.
    cat >"$tools/bin/redis-server" <<'WRAPPER'
#!/usr/bin/env bash
pkg=$(cd "$(dirname "${BASH_SOURCE[0]}")/../pkg" && pwd)
LD_LIBRARY_PATH="$pkg/libjemalloc2/usr/lib/x86_64-linux-gnu:$pkg/liblzf1/usr/lib/x86_64-linux-gnu" \
  exec -a redis-server "$pkg/redis-tools/usr/bin/redis-check-rdb" "$@"
WRAPPER
    chmod +x "$tools/bin/redis-server"
  fi
fi
"$tools/bin/redis-server" --version
