#!/usr/bin/env bash
# The tests run a real Prometheus and promtool (Debian's `prometheus` package). On a fresh
# machine this installs it, as root or through passwordless sudo, and keeps the service
# the package enables stopped: the tests start their own on loopback ports. Nothing to do
# when Prometheus (/usr/bin/prometheus, or PROMETHEUS_BIN) and /usr/bin/promtool are there.
set -euo pipefail

# The rules tests call /usr/bin/promtool whatever PROMETHEUS_BIN says.
if [ -n "${PROMETHEUS_BIN:-}" ] && [ ! -x "$PROMETHEUS_BIN" ]; then
  echo "PROMETHEUS_BIN=$PROMETHEUS_BIN is not an executable file" >&2
  exit 1
fi
if [ -x "${PROMETHEUS_BIN:-/usr/bin/prometheus}" ] && [ -x /usr/bin/promtool ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "the tests need Debian's prometheus and promtool: apt-get install -y --no-install-recommends prometheus (as root), or set PROMETHEUS_BIN" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "the tests need prometheus and promtool on the PATH, and this system has no apt-get to install them; set PROMETHEUS_BIN" >&2
  exit 1
fi

echo "installing Debian's prometheus for the tests" >&2
# Through env, so that sudo's environment reset keeps the frontend non-interactive.
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2

# The package enables a service on :9090 that the tests never use.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  "${as_root[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
  "${as_root[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
fi
