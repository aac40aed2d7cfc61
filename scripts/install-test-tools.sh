#!/usr/bin/env bash
# Puts the external programs the tests run against into .tools/ (git-ignored), from Debian's
# packages: promtool (package prometheus) checks the /metrics exposition; redis-server backs the
# Redis async queue's tests; boto3 (python3-boto3) runs the README's Python snippets; openssl makes
# the HTTPS tests' certificates. Unpacked, not installed, so no daemon starts and nothing outside
# the repository changes.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.tools
mkdir -p "$tools/bin"

fetch_deb() { # packages → each unpacked into $tools/pkg/<package>; one download for them all
  local work package
  work=$(mktemp -d)
  (cd "$work" && apt-get download "$@" >/dev/null 2>&1) || {
    [ "$(id -u)" = 0 ] || { echo "install-test-tools: cannot download $* (run apt-get update as root)" >&2; return 1; }
    apt-get update -qq >/dev/null
    (cd "$work" && apt-get download "$@" >/dev/null)
  }
  for package in "$@"; do
    rm -rf "$tools/pkg/$package"
    mkdir -p "$tools/pkg/$package"
    dpkg -x "$work/${package}"_*.deb "$tools/pkg/$package"
  done
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
    fetch_deb redis-tools libjemalloc2 liblzf1
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

# The machine's openssl when it has one; else Debian's, with its own libssl (libssl3, or
# libssl3t64 from trixie on: whichever the openssl package depends on) and its own openssl.cnf.
if [ ! -x "$tools/bin/openssl" ]; then
  if command -v openssl >/dev/null; then
    ln -sf "$(command -v openssl)" "$tools/bin/openssl"
  else
    libssl=$(apt-cache depends openssl 2>/dev/null | awk '/Depends: libssl/ { print $2; exit }')
    fetch_deb openssl "${libssl:-libssl3}"
    # The wrapper finds the packages next to itself, so .tools/ still works after a move or copy.
    cat >"$tools/bin/openssl" <<'WRAPPER'
#!/usr/bin/env bash
pkg=$(cd "$(dirname "${BASH_SOURCE[0]}")/../pkg" && pwd)
lib=$(echo "$pkg"/libssl3*/usr/lib/x86_64-linux-gnu)
LD_LIBRARY_PATH=$lib OPENSSL_CONF=$pkg/openssl/etc/ssl/openssl.cnf exec "$pkg/openssl/usr/bin/openssl" "$@"
WRAPPER
    chmod +x "$tools/bin/openssl"
  fi
fi
"$tools/bin/openssl" version

# Debian's boto3 and its Debian dependencies (`apt-cache depends`), all pure Python, for the
# README's snippets: a pip-installed boto3 on the machine must not stand in for it. The wrapper
# runs python3 with -S (no site-packages) and only these packages on the path.
boto3_packages=(python3-boto3 python3-botocore python3-s3transfer python3-jmespath python3-dateutil
  python3-six python3-urllib3 python3-requests python3-certifi python3-charset-normalizer
  python3-chardet python3-idna)
if ! "$tools/bin/python3-boto3" -c 'import boto3, requests, certifi, charset_normalizer, chardet, idna' 2>/dev/null; then
  fetch_deb "${boto3_packages[@]}"
  cat >"$tools/bin/python3-boto3" <<'WRAPPER'
#!/usr/bin/env bash
pkg=$(cd "$(dirname "${BASH_SOURCE[0]}")/../pkg" && pwd)
path=
for dir in "$pkg"/python3-*/usr/lib/python3/dist-packages; do path=${path:+$path:}$dir; done
# Debian's own interpreter where there is one: the packages are built for it.
python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3)
PYTHONPATH=$path exec "$python" -S "$@"
WRAPPER
  chmod +x "$tools/bin/python3-boto3"
fi
"$tools/bin/python3-boto3" -c 'import boto3; print("boto3", boto3.__version__, boto3.__file__)'
