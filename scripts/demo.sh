#!/usr/bin/env bash
# The Outpost demo: the cloud on its embedded NATS, three edge agents on three firmware
# profiles (z-score and stock int8 model scoring, embedded and external brokers), and
# the sensor simulator replaying NAB's realKnownCause series with injected spikes. Prints the dashboard URL and tails anomalies; Ctrl-C stops everything cleanly.
#
# Ports (override with environment variables): NATS 4222, HTTP 8080, MQTT 1883 and 1884
# (the agents' embedded brokers) and 1885 (a mosquitto for the external-broker profile).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
DATA=${DEMO_DATA:-demo-data}
NATS_PORT=${NATS_PORT:-4222}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
MQTT1=${MQTT1:-127.0.0.1:1883}
MQTT2=${MQTT2:-127.0.0.1:1884}
MQTT3_PORT=${MQTT3_PORT:-1885}
SPEEDUP=${SPEEDUP:-3600}
NATS_URL="nats://127.0.0.1:${NATS_PORT}"

for b in outpost-cloud outpost-edge fleet sensorsim; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b missing; run 'make demo' (it builds first)" >&2; exit 1; }
done
./scripts/install-test-deps.sh mosquitto
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

rm -rf "$DATA"
mkdir -p "$DATA"/{cloud,gw-1,gw-2,gw-3,mosquitto} "$DATA/logs"
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping..." >&2
  # Simulators first, then agents (they flush their outboxes), then brokers and the cloud.
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  echo "demo: stopped; logs are in $DATA/logs" >&2
}
trap cleanup INT TERM EXIT

wait_port() { # host:port, name
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: $2 did not start listening on $1; see $DATA/logs" >&2
  exit 1
}

echo "demo: starting outpost-cloud (embedded NATS on :$NATS_PORT, dashboard on http://$HTTP_ADDR/)" >&2
"$BIN/outpost-cloud" serve --data "$DATA/cloud" --nats-listen "127.0.0.1:$NATS_PORT" --http "$HTTP_ADDR" \
  >"$DATA/logs/cloud.log" 2>&1 &
pids+=($!)
wait_port "127.0.0.1:$NATS_PORT" "outpost-cloud (NATS)"
wait_port "$HTTP_ADDR" "outpost-cloud (HTTP)"

cat >"$DATA/mosquitto/mosquitto.conf" <<CONF
listener $MQTT3_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $PWD/$DATA/mosquitto/
max_queued_messages 100000
CONF
"$MOSQUITTO" -c "$DATA/mosquitto/mosquitto.conf" >"$DATA/logs/mosquitto.log" 2>&1 &
pids+=($!)
wait_port "127.0.0.1:$MQTT3_PORT" "mosquitto"

echo "demo: starting edge agents gw-1 (generic-sensor: z-score), gw-2 (generic-sensor-model: the stock int8 model), both with embedded brokers, and gw-3 (external-mosquitto)" >&2
"$BIN/outpost-edge" run --config firmware-configs/generic-sensor.yaml --agent-id gw-1 \
  --nats "$NATS_URL" --mqtt-listen "$MQTT1" --data "$DATA/gw-1" >"$DATA/logs/gw-1.log" 2>&1 &
pids+=($!)
"$BIN/outpost-edge" run --config firmware-configs/generic-sensor-model.yaml --agent-id gw-2 \
  --nats "$NATS_URL" --mqtt-listen "$MQTT2" --data "$DATA/gw-2" >"$DATA/logs/gw-2.log" 2>&1 &
pids+=($!)
"$BIN/outpost-edge" run --config firmware-configs/external-mosquitto.yaml --agent-id gw-3 \
  --nats "$NATS_URL" --mqtt "tcp://127.0.0.1:$MQTT3_PORT" --data "$DATA/gw-3" >"$DATA/logs/gw-3.log" 2>&1 &
pids+=($!)
wait_port "$MQTT1" "gw-1's embedded broker"
wait_port "$MQTT2" "gw-2's embedded broker"

echo "demo: replaying NAB realKnownCause (7 series per gateway, ${SPEEDUP}x) with injected spikes" >&2
n=0
for url in "tcp://$MQTT1" "tcp://$MQTT2" "tcp://127.0.0.1:$MQTT3_PORT"; do
  n=$((n+1))
  "$BIN/sensorsim" --mqtt "$url" --data datasets/nab/data/realKnownCause --speedup "$SPEEDUP" \
    --spike-every 30s --spike-sigma 10 --loop --client-id "demo-sim-$n" \
    >"$DATA/logs/sim-$n.log" 2>&1 &
  pids+=($!)
done

cat >&2 <<MSG

  Outpost demo is running.
    dashboard:   http://$HTTP_ADDR/
    metrics:     http://$HTTP_ADDR/metrics
    devices:     $BIN/fleet --nats $NATS_URL devices list
    logs:        $DATA/logs/
  Tailing anomalies below; Ctrl-C stops everything.

MSG
"$BIN/fleet" --nats "$NATS_URL" events tail &
pids+=($!)
wait "${pids[@]}" 2>/dev/null || true
