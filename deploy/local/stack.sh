#!/usr/bin/env bash
# The real systems onepipe runs on, on loopback only:
#   Apache Kafka 4.x (KRaft, single node, jars from Maven Central), PostgreSQL (Debian's
#   package, own data folder and port) and s3s-fs (an Apache-2.0 S3-compatible server
#   from crates.io) with a bucket created.
#
#   stack.sh up [kafka|postgres|s3]...
#                    install what is missing, start what is not running, wait until ready
#                    (all three by default; `make run` needs only kafka)
#   stack.sh down    stop what `up` started, by pid
#   stack.sh status  what is running, where
#   stack.sh env     export lines for tests and people: eval "$(deploy/local/stack.sh env)"
#   stack.sh clean   down, then delete the stack's data
#
# Downloads and builds are cached under $ONEPIPE_CACHE (default ~/.cache/onepipe); data,
# logs and pids live under $ONEPIPE_STACK_DIR (default /tmp/onepipe-stack-$UID). Ports can
# be moved with ONEPIPE_KAFKA_PORT, ONEPIPE_PG_PORT and ONEPIPE_S3_PORT.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
deploy=$(cd "$here/.." && pwd)

cache=${ONEPIPE_CACHE:-$HOME/.cache/onepipe}
run=${ONEPIPE_STACK_DIR:-/tmp/onepipe-stack-$(id -u)}
host=127.0.0.1
kafka_port=${ONEPIPE_KAFKA_PORT:-19092}
controller_port=$((kafka_port + 1))
pg_port=${ONEPIPE_PG_PORT:-15432}
s3_port=${ONEPIPE_S3_PORT:-19000}

kafka_version=4.1.1
kafka_libs=$cache/kafka-$kafka_version/libs
s3s_version=0.14.1
s3s_bin=$cache/s3s-fs-$s3s_version/bin/s3s-fs

pg_user=onepipe
pg_password=onepipe
pg_db=onepipe
s3_access_key=onepipe
s3_secret_key=onepipe-local-secret
s3_bucket=onepipe

log() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- installing

apt_updated=
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $sudo apt-get update -qq >&2
    apt_updated=1
  fi
  log "apt-get install $*"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

sudo=
if [ "$(id -u)" != 0 ]; then sudo=sudo; fi

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/postgres" ] && echo "$d"
}

install_missing() { # install_missing " COMPONENTS "
  local want=${1:- kafka postgres s3 }
  local pkgs=()
  command -v java >/dev/null || pkgs+=(default-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v kcat >/dev/null || pkgs+=(kcat)
  if [[ $want == *" postgres "* ]]; then pg_bin >/dev/null || pkgs+=(postgresql); fi
  if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi

  if [ ! -f "$kafka_libs/.complete" ]; then
    log "fetching Apache Kafka $kafka_version jars from Maven Central"
    rm -rf "$kafka_libs"
    mvn -q -B -Dstyle.color=never -f "$deploy/kafka/pom.xml" dependency:copy-dependencies \
      -Dkafka.version="$kafka_version" -DincludeScope=runtime \
      -DoutputDirectory="$kafka_libs" >&2
    touch "$kafka_libs/.complete"
  fi

  if [[ $want == *" s3 "* ]] && [ ! -x "$s3s_bin" ]; then
    command -v cargo >/dev/null || die "cargo not found: it builds the S3 server (s3s-fs)"
    log "building s3s-fs $s3s_version (S3-compatible server, Apache-2.0), once"
    cargo install -q s3s-fs --version "$s3s_version" --locked --features binary \
      --root "$cache/s3s-fs-$s3s_version" >&2
  fi
}

# ---------------------------------------------------------------- processes

alive() { [ -f "$1" ] && kill -0 "$(head -n 1 "$1")" 2>/dev/null; }

wait_for() { # wait_for SECONDS WHAT COMMAND...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.5
  done
  log "$what ready"
}

port_free() { ! (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }

stop_pid() { # stop_pid NAME PIDFILE SIGNAL
  local name=$1 pidfile=$2 sig=$3 pid
  if ! alive "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(head -n 1 "$pidfile")
  log "stopping $name (pid $pid)"
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.5
  done
  log "$name did not stop in 30 s, killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- kafka

kafka_ready() {
  kcat -b "$host:$kafka_port" -L -m 3 2>/dev/null | grep -q '1 brokers'
}

start_kafka() {
  local dir=$run/kafka
  if alive "$dir/kafka.pid"; then log "kafka already running"; return; fi
  port_free "$kafka_port" && port_free "$controller_port" \
    || die "port $kafka_port or $controller_port is taken by a process this stack did not start; stop it or set ONEPIPE_KAFKA_PORT"
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$controller_port
listeners=PLAINTEXT://$host:$kafka_port,CONTROLLER://$host:$controller_port
advertised.listeners=PLAINTEXT://$host:$kafka_port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
auto.create.topics.enable=false
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# The log cleaner looks for topics to compact every half second (default 15 s), so tests of
# compacted topics do not wait.
log.cleaner.backoff.ms=500
# Keep every record: tests produce records with fixed dates, which fall out of the default
# 7-day retention as the calendar moves on, and Kafka would then delete them in the middle of
# a test. Tests of retention set it per topic or move the log start offset themselves.
log.retention.ms=-1
EOF
  cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = warn
EOF
  local java=(java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$kafka_libs/*")
  if [ ! -f "$dir/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$("${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    log "formatting kafka storage (cluster $cluster_id)"
    "${java[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
  fi
  log "starting kafka on $host:$kafka_port"
  nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 </dev/null &
  echo $! >"$dir/kafka.pid"
  wait_for 120 "kafka $host:$kafka_port" kafka_ready \
    || { tail -n 40 "$dir/kafka.log" >&2; die "kafka did not become ready in 120 s (log: $dir/kafka.log)"; }
}

# ---------------------------------------------------------------- postgresql

# PostgreSQL refuses to run as root; as root the server runs as the `postgres` user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_ready() {
  local bin; bin=$(pg_bin)
  "$bin/pg_isready" -q -h "$host" -p "$pg_port"
}

start_postgres() {
  local bin dir=$run/postgres data=$run/postgres/data
  bin=$(pg_bin) || die "postgresql is not installed"
  if alive "$dir/postgres.pid"; then log "postgresql already running"; return; fi
  port_free "$pg_port" || die "port $pg_port is taken by a process this stack did not start; set ONEPIPE_PG_PORT"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; chmod 755 "$run"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising postgresql data in $data"
    local pwfile=$dir/pwfile
    echo "$pg_password" >"$pwfile"
    [ "$(id -u)" = 0 ] && chown postgres: "$pwfile"
    as_pg "$bin/initdb" -D "$data" -U "$pg_user" --pwfile="$pwfile" \
      --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$pwfile"
  fi
  log "starting postgresql on $host:$pg_port"
  # A throwaway test database: durability settings off for speed.
  as_pg "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start \
    -o "-p $pg_port -k $data -c listen_addresses=$host -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2 \
    || { tail -n 20 "$dir/postgres.log" >&2; die "postgresql did not start (log: $dir/postgres.log)"; }
  head -n 1 "$data/postmaster.pid" >"$dir/postgres.pid"
  wait_for 60 "postgresql $host:$pg_port" pg_ready || die "postgresql not ready"
  if ! as_pg "$bin/psql" -h "$data" -p "$pg_port" -U "$pg_user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$pg_db'" | grep -q 1; then
    as_pg "$bin/createdb" -h "$data" -p "$pg_port" -U "$pg_user" "$pg_db"
  fi
}

# ---------------------------------------------------------------- s3

s3() { # s3 METHOD PATH: a signed request, prints the HTTP status
  local method=(-X "$1")
  [ "$1" = HEAD ] && method=(--head)
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${method[@]}" \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$s3_access_key:$s3_secret_key" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "http://$host:$s3_port/$2"
}

s3_ready() { [ "$(s3 GET '')" = 200 ]; }

start_s3() {
  local dir=$run/s3
  if alive "$dir/s3.pid"; then
    log "s3 server already running"
  else
    port_free "$s3_port" || die "port $s3_port is taken by a process this stack did not start; set ONEPIPE_S3_PORT"
    mkdir -p "$dir/data"
    log "starting s3s-fs on $host:$s3_port"
    nohup "$s3s_bin" --host "$host" --port "$s3_port" --access-key "$s3_access_key" \
      --secret-key "$s3_secret_key" "$dir/data" >"$dir/s3.log" 2>&1 </dev/null &
    echo $! >"$dir/s3.pid"
    wait_for 30 "s3 $host:$s3_port" s3_ready \
      || { tail -n 20 "$dir/s3.log" >&2; die "s3 server did not become ready (log: $dir/s3.log)"; }
  fi
  if [ "$(s3 HEAD "$s3_bucket")" != 200 ]; then
    local code; code=$(s3 PUT "$s3_bucket")
    [ "$code" = 200 ] || die "creating bucket $s3_bucket failed: HTTP $code"
    log "bucket $s3_bucket created"
  fi
}

# ---------------------------------------------------------------- commands

cmd_up() { # cmd_up [kafka] [postgres] [s3]: all three by default
  local want=" ${*:-kafka postgres s3} "
  local c
  for c in $want; do
    case $c in kafka | postgres | s3) ;; *) die "unknown component $c (kafka, postgres, s3)" ;; esac
  done
  install_missing "$want"
  mkdir -p "$run"
  [[ $want == *" postgres "* ]] && start_postgres
  [[ $want == *" s3 "* ]] && start_s3
  [[ $want == *" kafka "* ]] && start_kafka
  log "up; load the endpoints with: eval \"\$($0 env)\""
}

cmd_down() {
  stop_pid kafka "$run/kafka/kafka.pid" TERM
  stop_pid s3s-fs "$run/s3/s3.pid" TERM
  # SIGINT is PostgreSQL's fast shutdown.
  stop_pid postgresql "$run/postgres/postgres.pid" INT
}

cmd_status() {
  local rc=0
  for entry in "kafka:$run/kafka/kafka.pid:$host:$kafka_port" \
    "postgresql:$run/postgres/postgres.pid:$host:$pg_port" \
    "s3:$run/s3/s3.pid:http://$host:$s3_port"; do
    local name=${entry%%:*} rest=${entry#*:}
    local pidfile=${rest%%:*} addr=${rest#*:}
    if alive "$pidfile"; then
      printf '%-11s running  pid %-8s %s\n' "$name" "$(head -n 1 "$pidfile")" "$addr"
    else
      printf '%-11s stopped\n' "$name"
      rc=3
    fi
  done
  return $rc
}

cmd_env() {
  cat <<EOF
export ONEPIPE_KAFKA_BOOTSTRAP=$host:$kafka_port
export ONEPIPE_DATABASE_URL=postgres://$pg_user:$pg_password@$host:$pg_port/$pg_db
export ONEPIPE_S3_ENDPOINT=http://$host:$s3_port
export ONEPIPE_S3_BUCKET=$s3_bucket
export ONEPIPE_OBJECT_STORE=s3://$s3_bucket
export AWS_ACCESS_KEY_ID=$s3_access_key
export AWS_SECRET_ACCESS_KEY=$s3_secret_key
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://$host:$s3_port
export AWS_ALLOW_HTTP=true
EOF
}

cmd_clean() {
  cmd_down
  log "deleting $run"
  rm -rf "$run"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  clean) cmd_clean ;;
  *)
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
