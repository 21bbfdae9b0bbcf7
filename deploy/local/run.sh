#!/usr/bin/env bash
# `make run`: the whole pipeline on one machine, on the embedded defaults, with a demo.
#
#   deploy/local/run.sh [--once] [--data DIR] [--events N]
#
# Starts Apache Kafka (deploy/local/stack.sh up kafka), then the registry on SQLite,
# http-producer, copycat on a local-folder archive; sends a realistic page-view stream
# (deploy/local/demo.py); lets copycat archive it, runs copydog, loads a SQLite
# warehouse with warehouse-loader, runs the verifier and prints a report; online-sink keeps
# an online SQLite table of one row per view, seconds behind Kafka. Then keeps the
# services running until Ctrl-C, or stops them at once with --once. Everything is under
# DIR (default ./.onepipe): registry.db, archive/, warehouse.db, online.db, logs/.
#
# Binaries come from $CARGO_TARGET_DIR/fast (`make run` builds them with the `fast`
# profile first), or from $ONEPIPE_BIN. Ports: registry 8090-8092, http-producer
# 8093-8094, online-sink 8095, copycat 8096, warehouse-loader 8098.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
data=$root/.onepipe
once=0
events=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --once) once=1 ;;
    --data) data=$2; shift ;;
    --events) events=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
bin=${ONEPIPE_BIN:-${CARGO_TARGET_DIR:-$root/target}/fast}
for b in registry http-producer copycat copydog warehouse-loader verifier online-sink onepipe; do
  [ -x "$bin/$b" ] || { echo "run: $bin/$b missing: build with cargo build --profile fast --bins (make run does)" >&2; exit 2; }
done

step() { printf '\n== %s\n' "$*"; }
mkdir -p "$data"
data=$(cd "$data" && pwd)
# A fresh demo each time: new folder contents and a new topic name.
rm -rf "$data/archive" "$data/warehouse.db" "$data/online.db" "$data/registry.db" "$data/logs" \
  "$data/demo-state.json"*
mkdir -p "$data/logs" "$data/archive"
topic=page_views_$(date +%s)
archive=file://$data/archive
warehouse=sqlite://$data/warehouse.db
online=sqlite://$data/online.db
registry=http://127.0.0.1:8090

step "starting Apache Kafka (first use fetches its jars from Maven Central)"
"$root/deploy/local/stack.sh" up kafka
eval "$("$root/deploy/local/stack.sh" env)"

pids=()
cleanup() {
  local rc=$?
  if [ ${#pids[@]} -gt 0 ]; then
    step "stopping the services"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # start NAME ARGS...: runs a service in the background, log in logs/NAME.log
  local name=$1; shift
  "$bin/$name" "$@" >"$data/logs/$name.log" 2>&1 &
  pids+=($!)
}
wait_ready() { # wait_ready NAME URL
  local i
  for i in $(seq 1 120); do
    if curl -fs "$2" >/dev/null 2>&1; then echo "   $1 ready"; return 0; fi
    sleep 0.5
  done
  echo "run: $1 not ready after 60 s; see $data/logs/$1.log" >&2
  tail -n 20 "$data/logs/$1.log" >&2 || true
  exit 1
}
metric() { # metric URL NAME: the sum of a metric's samples
  curl -fs "$1/metrics" | awk -v n="$2" 'index($0, n) == 1 { s += $NF } END { printf "%d", s }'
}

step "starting the registry (SQLite), http-producer and copycat (archive in $data/archive)"
start registry --database "sqlite://$data/registry.db" --listen 127.0.0.1:8090 \
  --rest-listen 127.0.0.1:8091 --admin-listen 127.0.0.1:8092
wait_ready registry http://127.0.0.1:8092/readyz
start http-producer --registry "$registry" --listen 127.0.0.1:8093 --admin-listen 127.0.0.1:8094
wait_ready http-producer http://127.0.0.1:8094/readyz

step "registering dataset $topic (unique key view_id, newest version wins)"
cat >"$data/page_views.avsc" <<'EOF'
{"type": "record", "name": "PageView", "namespace": "demo", "fields": [
  {"name": "view_id", "type": "string"},
  {"name": "version", "type": "long"},
  {"name": "user_id", "type": "long"},
  {"name": "url", "type": "string"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "duration_ms", "type": "long"}]}
EOF
"$bin/onepipe" --registry "$registry" topic create "$topic" --schema-file "$data/page_views.avsc" \
  --unique-key view_id --merge max_by:version --sort-key at,view_id --partition-time at \
  --checks sum:duration_ms,row_checksum --partitions 3 \
  --kafka-bootstrap "$ONEPIPE_KAFKA_BOOTSTRAP"

start copycat --registry "$registry" --object-store "$archive" --topics "^${topic}\$" \
  --idle-flush 2s --admin-listen 127.0.0.1:8096
wait_ready copycat http://127.0.0.1:8096/readyz
start online-sink --registry "$registry" --kafka-bootstrap "$ONEPIPE_KAFKA_BOOTSTRAP" \
  --database "$online" --datasets "$topic" --admin-listen 127.0.0.1:8095
wait_ready online-sink http://127.0.0.1:8095/readyz

step "sending about $events page views through http-producer"
python3 "$root/deploy/local/demo.py" produce --api http://127.0.0.1:8093 --topic "$topic" \
  --onepipe "$bin/onepipe" --registry "$registry" --events "$events" --state "$data/demo-state.json"
accepted=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['accepted'])" "$data/demo-state.json")

step "copycat archives every record"
archived=0
for i in $(seq 1 240); do
  archived=$(metric http://127.0.0.1:8096 onepipe_copycat_records_archived_total)
  printf '\r   %s of %s records archived' "$archived" "$accepted"
  [ "$archived" -ge "$accepted" ] && break
  sleep 0.5
done
echo
[ "$archived" -ge "$accepted" ] || { echo "run: copycat did not archive everything; see logs/copycat.log" >&2; exit 1; }

step "online-sink applies every record to the online table ($data/online.db)"
applied=0
for i in $(seq 1 240); do
  applied=$(metric http://127.0.0.1:8095 onepipe_online_records_total)
  printf '\r   %s of %s records applied' "$applied" "$accepted"
  [ "$applied" -ge "$accepted" ] && break
  sleep 0.5
done
echo
[ "$applied" -ge "$accepted" ] || { echo "run: online-sink did not apply everything; see logs/online-sink.log" >&2; exit 1; }

step "copydog: deduplicate, sort and commit the clean archive"
"$bin/copydog" --registry "$registry" --object-store "$archive" run --topic "$topic" 2>&1 \
  | grep -v '^{' || true

step "warehouse-loader: load the SQLite warehouse ($data/warehouse.db)"
"$bin/warehouse-loader" --registry "$registry" --object-store "$archive" --database "$warehouse" \
  --datasets "$topic" --once --admin-listen 127.0.0.1:0 2>&1 | grep -v '^{' || true

step "verifier: do the raw archive, the clean archive, the warehouse and the online table agree?"
set +e
"$bin/verifier" --registry "$registry" --object-store "$archive" --warehouse "$warehouse" \
  --online "$online" --kafka-bootstrap "$ONEPIPE_KAFKA_BOOTSTRAP" --lag-window 2s check --dataset "$topic" 2>/dev/null \
  | tail -n 25
verdict=${PIPESTATUS[0]}
python3 "$root/deploy/local/demo.py" report --topic "$topic" --state "$data/demo-state.json" \
  --archive "$data/archive" --warehouse "$data/warehouse.db" --online "$data/online.db" \
  --archived "$archived" \
  --verifier-exit "$verdict" --logs "$data/logs" --onepipe "$bin/onepipe" --verifier "$bin/verifier"
report=$?
set -e

if [ "$once" = 1 ]; then
  exit $report
fi
start warehouse-loader --registry "$registry" --object-store "$archive" --database "$warehouse" \
  --datasets "$topic" --admin-listen 127.0.0.1:8098 --poll-interval 5s
echo
echo "The services keep running (registry :8090, http-producer :8093, copycat, online-sink, warehouse-loader)."
echo "Send more with: curl -s localhost:8093/v1/topics/$topic/records -H 'content-type: application/json' -d '{\"records\": [...]}'"
echo "Ctrl-C stops everything this script started."
wait
