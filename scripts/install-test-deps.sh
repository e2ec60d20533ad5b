#!/usr/bin/env bash
# Installs what Outpost's tests (and demo) need when it is missing: mosquitto (the real MQTT broker the
# tests start on loopback) and qemu-user-static (to run the arm64 edge binary in a test).
# Uses apt-get, with sudo when not root. Go modules come from the Go module proxy on first build.
set -euo pipefail

# With arguments, only those packages are considered (e.g. `install-test-deps.sh mosquitto`).
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(mosquitto qemu-user-static)
need=()
for p in "${want[@]}"; do
  case "$p" in
    mosquitto) command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto) ;;
    qemu-user-static) command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static) ;;
    *) command -v "$p" >/dev/null 2>&1 || need+=("$p") ;;
  esac
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

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
# The Debian mosquitto package starts a system broker on port 1883; the tests start their
# own brokers on free ports and do not need it, and the demo wants 1883 for itself.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  $sudo systemctl stop mosquitto || true
fi
