#!/usr/bin/env bash
# The Outpost demo: the cloud on its embedded NATS, three edge agents on three firmware
# profiles (z-score and stock int8 model scoring, embedded and external brokers), and
# the sensor simulator replaying NAB's realKnownCause series with injected spikes. Prints the
# dashboard URL, then every anomaly the edge forwards with the cloud's verdict on it, and the
# learning loop's decisions; Ctrl-C stops everything cleanly.
#
# The learning loop runs in approve mode: gw-2 (the int8 model) uploads samples of the
# windows it judges normal (a demo budget: every 3 s, instead of the profile default of
# every 10 min), the cloud watches each stream for drift and, on drift and every minute,
# trains a challenger on the windows of all the streams the model runs on and compares it
# with the model; a better one is signed and stored and waits for `fleet models approve`. The
# agents trust the cloud's signing key (--trust-key, from `fleet keys public`), so an
# approved model is rolled out to gw-2 and swapped in while it runs.
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

HAVE_JQ=1
command -v jq >/dev/null || { HAVE_JQ=0; echo "demo: jq not found; showing edge events only (no verdicts or learning decisions)" >&2; }

rm -rf "$DATA"
mkdir -p "$DATA"/{cloud,gw-1,gw-2,gw-3,mosquitto} "$DATA/logs"
DATA=$(cd "$DATA" && pwd)
FLEET=("$BIN/fleet" --nats "$NATS_URL")
# Started processes by stage: cloud and mosquitto, agents, simulators and the display.
core=() agents=() front=()
stop_all() { # pids...
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "demo: stopping..." >&2
  # Simulators first, then agents (they flush their outboxes), then the broker and the cloud.
  stop_all ${front[@]+"${front[@]}"}
  stop_all ${agents[@]+"${agents[@]}"}
  stop_all ${core[@]+"${core[@]}"}
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
  --learn approve --learn-interval 1m >"$DATA/logs/cloud.log" 2>&1 &
core+=($!)
wait_port "127.0.0.1:$NATS_PORT" "outpost-cloud (NATS)"
wait_port "$HTTP_ADDR" "outpost-cloud (HTTP)"
# The agents accept models and profiles signed with the cloud's key only.
"${FLEET[@]}" keys public >"$DATA/trust.key"

cat >"$DATA/mosquitto/mosquitto.conf" <<CONF
listener $MQTT3_PORT 127.0.0.1
allow_anonymous true
persistence true
persistence_location $DATA/mosquitto/
# Stay the user that runs the demo (as root, mosquitto would switch to "mosquitto" and
# could not write its database here).
user $(id -un)
max_queued_messages 100000
CONF
"$MOSQUITTO" -c "$DATA/mosquitto/mosquitto.conf" >"$DATA/logs/mosquitto.log" 2>&1 &
core+=($!)
wait_port "127.0.0.1:$MQTT3_PORT" "mosquitto"

# gw-2's profile: the model profile with a demo sample budget, so the learning loop has
# windows within a minute.
cp firmware-configs/generic-sensor-model.yaml "$DATA/gw-2.yaml"
cat >>"$DATA/gw-2.yaml" <<YAML
# demo: sample often, so the cloud's learning loop has windows within a minute
uplink:
  sample_budget: 536870912
  sample_interval: 3s
  sample_windows: 16
YAML

echo "demo: starting edge agents gw-1 (generic-sensor: z-score), gw-2 (generic-sensor-model: the stock int8 model), both with embedded brokers, and gw-3 (generic-sensor-tuned: the int8 model with the detector measured on NAB) on an external mosquitto" >&2
"$BIN/outpost-edge" run --config firmware-configs/generic-sensor.yaml --agent-id gw-1 --trust-key "$DATA/trust.key" \
  --nats "$NATS_URL" --mqtt-listen "$MQTT1" --data "$DATA/gw-1" >"$DATA/logs/gw-1.log" 2>&1 &
agents+=($!)
"$BIN/outpost-edge" run --config "$DATA/gw-2.yaml" --agent-id gw-2 --trust-key "$DATA/trust.key" \
  --nats "$NATS_URL" --mqtt-listen "$MQTT2" --data "$DATA/gw-2" >"$DATA/logs/gw-2.log" 2>&1 &
agents+=($!)
"$BIN/outpost-edge" run --config firmware-configs/generic-sensor-tuned.yaml --agent-id gw-3 --trust-key "$DATA/trust.key" \
  --nats "$NATS_URL" --mqtt "tcp://127.0.0.1:$MQTT3_PORT" --data "$DATA/gw-3" >"$DATA/logs/gw-3.log" 2>&1 &
agents+=($!)
wait_port "$MQTT1" "gw-1's embedded broker"
wait_port "$MQTT2" "gw-2's embedded broker"

echo "demo: replaying NAB realKnownCause (7 series per gateway, ${SPEEDUP}x) with injected spikes" >&2
n=0
for url in "tcp://$MQTT1" "tcp://$MQTT2" "tcp://127.0.0.1:$MQTT3_PORT"; do
  n=$((n+1))
  "$BIN/sensorsim" --mqtt "$url" --data datasets/nab/data/realKnownCause --speedup "$SPEEDUP" \
    --spike-every 30s --spike-sigma 10 --loop --client-id "demo-sim-$n" \
    >"$DATA/logs/sim-$n.log" 2>&1 &
  front+=($!)
done

# follow prints, every 2 s, each new event once the cloud has judged it (or 15 s after
# it arrived without a verdict), and each new learning decision. (Fields are never empty:
# read would merge two tabs.)
follow() {
  set +e # a failed query or an odd value skips a beat, not the display
  declare -A seen=()
  local fmt='%-19s  %-4s  %-44.44s  %-9s %8.3g  %-10s %-10s -> %-9s %6s  %s\n'
  printf "${fmt/\%8.3g/%8s}" "READING (UTC)" "GW" "STREAM" "EDGE" "SCORE" "MODEL" "SOURCE" "CLOUD" "SCORE" "MODEL"
  while :; do
    local now
    now=$(date +%s)
    while IFS=$'\t' read -r agent seq ts stream kind score model source verdict vscore vmodel age; do
      [ -n "${seen["e $agent $seq"]:-}" ] && continue
      [ "$verdict" = - ] && [ "$age" -lt 15 ] && continue
      [ "$verdict" = - ] && verdict="none yet"
      seen["e $agent $seq"]=1
      printf "$fmt" "$ts" "$agent" "${stream#sensors/}" "$kind" "$score" "$model" "$source" "$verdict" "$vscore" "$vmodel"
    done < <("${FLEET[@]}" -o json events list --since 3m --limit 1000 2>/dev/null | jq -r --argjson now "$now" '
      .[] | [.agent, (.seq|tostring), (.ts|sub("\\.[0-9]+";"")|sub("T";" ")|rtrimstr("Z")), .stream, .kind, .score, .model,
             (.source // "-"), (.verdict // "-"), (if .verdict_score == null then "-" else (.verdict_score*1000|round/1000|tostring) end),
             (.verdict_model // "-"), ($now - (.received|sub("\\.[0-9]+";"")|fromdateiso8601)|floor)] | @tsv')
    while IFS=$'\t' read -r id kind trigger stream champ chal rollout reason; do
      [ -n "${seen["l $id"]:-}" ] && continue
      seen["l $id"]=1
      local why="${reason%% — *}" by="after drift"
      [ "$trigger" = schedule ] && by="on schedule"
      case "$kind" in
        drift) echo "LEARN  drift on $stream: $reason" ;;
        rejected) echo "LEARN  challenger $chal ($by, $stream) rejected, $champ stays: ${why#not better: }" ;;
        awaiting_approval) echo "LEARN  challenger $chal ($by, $stream) is better than $champ: ${reason%%; approve with*}"
          echo "LEARN  to roll it out to gw-2: ${FLEET[*]} models approve $chal" ;;
        promoted) echo "LEARN  $chal promoted, replacing $champ on gw-2 (rollout $rollout: ${FLEET[*]} rollout status $rollout)" ;;
        *) echo "LEARN  $kind: $stream $champ ${chal:+-> $chal}: $why" ;;
      esac
    done < <("${FLEET[@]}" -o json models history --limit 50 2>/dev/null | jq -r '
      reverse | .[] | [.id, .kind, (.trigger // "-"), .stream, .champion, (.challenger // "-"), (.rollout // "-"), (.reason // "-")] | @tsv')
    sleep 2
  done
}

cat >&2 <<MSG

  Outpost demo is running.
    dashboard:   http://$HTTP_ADDR/
    metrics:     http://$HTTP_ADDR/metrics
    devices:     ${FLEET[*]} devices list
    events:      ${FLEET[*]} events list
    learning:    ${FLEET[*]} models history   (the cloud runs --learn approve)
    logs:        $DATA/logs/
  Below: each anomaly an agent forwards, with the cloud's second-stage verdict on it, and
  the learning loop's decisions. Ctrl-C stops everything.

MSG
if [ "$HAVE_JQ" = 1 ]; then
  follow &
else
  "${FLEET[@]}" events tail &
fi
front+=($!)
wait ${front[@]+"${front[@]}"} 2>/dev/null || true
