#!/usr/bin/env bash
# Installs what Outpost's tests (and demo) need when it is missing:
#   - mosquitto, the real MQTT broker the tests start on loopback ports (Debian package);
#   - qemu-user-static, to run the arm64 edge binary in a test (Debian package);
#   - chromium, the headless browser the dashboard's end-to-end test drives (Debian package);
#   - LiteRT.js, the official TFLite runtime built for WebAssembly (npm registry), to run the
#     models our writer produces in it (needs node and npm).
# Debian packages go through apt-get, with sudo when not root. Go modules come from the Go
# module proxy on first build. With arguments, only those Debian packages are considered
# (e.g. `install-test-deps.sh mosquitto` for the demo) and LiteRT.js is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(mosquitto qemu-user-static chromium)
need=()
for p in "${want[@]}"; do
  case "$p" in
    mosquitto) command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto) ;;
    qemu-user-static) command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static) ;;
    *) command -v "$p" >/dev/null 2>&1 || need+=("$p") ;;
  esac
done

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "install-test-deps: need root or sudo to install: ${need[*]}" >&2
      exit 1
    fi
  fi
  echo "install-test-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian mosquitto package may start a system broker on port 1883; the tests start
  # their own brokers on free ports, and the demo wants 1883 for an agent's embedded broker.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    $sudo systemctl stop mosquitto || true
  fi
fi

litert=models/tflite/write/testdata/litert
if [ $# -eq 0 ] && [ ! -d "$litert/node_modules/@litertjs/core" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "install-test-deps: npm ci in $litert (LiteRT.js)" >&2
    (cd "$litert" && npm ci --no-audit --no-fund --loglevel=error)
  else
    echo "install-test-deps: npm not found; the LiteRT.js check is skipped (and fails under CI)" >&2
  fi
fi
