#!/usr/bin/env bash
# Installs the Outpost edge agent on a gateway: the binary, a firmware profile, a
# system user, a data directory and the systemd unit; then validates the profile and
# (with systemd) enables and starts the agent.
#
#   sudo ./install-gateway.sh --binary outpost-edge-linux-arm64 --profile generic-sensor.yaml \
#        --agent-id gw-17 [--nats nats://cloud:4222] [--trust-key cloud.pub]
#
# --root DIR installs under DIR instead of / (for staging an image; implies --no-start).
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

root="" binary="" profile="" agent_id="" nats="" trust_key="" start=1 mkuser=1
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --agent-id) agent_id="$2"; shift 2 ;;
    --nats) nats="$2"; shift 2 ;;
    --trust-key) trust_key="$2"; shift 2 ;;
    --no-start) start=0; shift ;;
    --no-user) mkuser=0; shift ;;
    -h|--help) usage ;;
    *) echo "install-gateway: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$binary" ] && [ -n "$profile" ] || { echo "install-gateway: --binary and --profile are required" >&2; usage; }
[ -f "$binary" ] || { echo "install-gateway: no binary at $binary" >&2; exit 1; }
[ -f "$profile" ] || { echo "install-gateway: no profile at $profile" >&2; exit 1; }
[ -n "$agent_id" ] || agent_id=$(hostname -s 2>/dev/null || hostname)
[ -n "$root" ] && start=0
here=$(cd "$(dirname "$0")" && pwd)

# Validate before touching anything, with the binary being installed when it runs here.
if "$binary" version >/dev/null 2>&1; then
  "$binary" validate --config "$profile"
else
  echo "install-gateway: $binary does not run on this machine (cross-built?); validation happens at first start" >&2
fi

install -d -m 0755 "$root/usr/local/bin" "$root/etc/outpost" "$root/etc/systemd/system"
install -d -m 0750 "$root/var/lib/outpost-edge"
install -m 0755 "$binary" "$root/usr/local/bin/outpost-edge"
install -m 0644 "$profile" "$root/etc/outpost/profile.yaml"
args=""
[ -n "$nats" ] && args="$args --nats $nats"
if [ -n "$trust_key" ]; then
  if "$binary" version >/dev/null 2>&1 && ! "$binary" run --help 2>&1 | grep -q -- --trust-key; then
    echo "install-gateway: this outpost-edge has no --trust-key flag" >&2
    exit 1
  fi
  install -m 0644 "$trust_key" "$root/etc/outpost/trust.pub"
  args="$args --trust-key /etc/outpost/trust.pub"
fi
cat >"$root/etc/outpost/agent.env" <<ENV
# Read by outpost-edge.service.
OUTPOST_AGENT_ID=$agent_id
OUTPOST_EDGE_ARGS=${args# }
ENV
install -m 0644 "$here/outpost-edge.service" "$root/etc/systemd/system/outpost-edge.service"

if [ "$mkuser" -eq 1 ] && [ -z "$root" ]; then
  if ! id outpost >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/outpost-edge --shell /usr/sbin/nologin outpost
  fi
  chown -R outpost:outpost /var/lib/outpost-edge
fi

if [ "$start" -eq 1 ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable --now outpost-edge.service
  systemctl --no-pager status outpost-edge.service | head -5 || true
else
  echo "install-gateway: installed under ${root:-/}; start with: systemctl enable --now outpost-edge" >&2
fi
