#!/usr/bin/env bash
# A 3-server NATS cluster with JetStream on loopback ports, in a directory of its own.
#
#   cluster.sh start DIR   writes DIR/n{1,2,3}.conf, starts the servers, waits until
#                          JetStream answers on all three; prints the client URLs
#   cluster.sh stop DIR    stops the servers started from DIR (by their pid files)
#   cluster.sh env DIR     prints the variables the tests read
#
# Ports: clients 14222-14224, routes 16222-16224, monitoring 18222-18224; override the
# bases with LIVECORE_NATS_CLIENT_PORT, LIVECORE_NATS_ROUTE_PORT, LIVECORE_NATS_HTTP_PORT.
# The servers require a user and password (LIVECORE_NATS_USER / LIVECORE_NATS_PASSWORD,
# default livecore / livecore-test), so the tests exercise credentials too.
set -euo pipefail

command=${1:?usage: cluster.sh start|stop|env DIR}
dir=${2:?usage: cluster.sh start|stop|env DIR}
client_base=${LIVECORE_NATS_CLIENT_PORT:-14222}
route_base=${LIVECORE_NATS_ROUTE_PORT:-16222}
http_base=${LIVECORE_NATS_HTTP_PORT:-18222}
user=${LIVECORE_NATS_USER:-livecore}
password=${LIVECORE_NATS_PASSWORD:-livecore-test}

urls() {
    local out=()
    for i in 0 1 2; do out+=("nats://127.0.0.1:$((client_base + i))"); done
    (IFS=,; echo "${out[*]}")
}

write_config() {
    local i=$1 name="n$((i + 1))"
    local routes=()
    for j in 0 1 2; do
        [[ $j == "$i" ]] || routes+=("nats-route://127.0.0.1:$((route_base + j))")
    done
    mkdir -p "$dir/$name"
    cat >"$dir/$name.conf" <<CONF
server_name: $name
listen: 127.0.0.1:$((client_base + i))
http: 127.0.0.1:$((http_base + i))
pid_file: "$dir/$name.pid"
log_file: "$dir/$name.log"
authorization {
  user: "$user"
  password: "$password"
}
jetstream {
  store_dir: "$dir/$name"
  max_memory_store: 256MB
  max_file_store: 8GB
}
cluster {
  name: livecore
  listen: 127.0.0.1:$((route_base + i))
  routes: [$(IFS=,; echo "${routes[*]}")]
}
CONF
}

healthy() {
    # 2.9 answers {"status":"ok"} once JetStream is current.
    local port=$1
    local body
    body=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null) || return 1
    [[ $body == *'"ok"'* ]]
}

case $command in
start)
    mkdir -p "$dir"
    for i in 0 1 2; do
        write_config "$i"
        nats-server -c "$dir/n$((i + 1)).conf" >/dev/null 2>&1 &
    done
    # Bounded wait: 60 s for all three to report healthy (JetStream meta group formed).
    for _ in $(seq 1 120); do
        ok=0
        for i in 0 1 2; do healthy $((http_base + i)) && ok=$((ok + 1)); done
        [[ $ok == 3 ]] && { urls; exit 0; }
        sleep 0.5
    done
    echo "cluster.sh: the servers did not become healthy; logs:" >&2
    tail -n 20 "$dir"/n*.log >&2 || true
    exit 1
    ;;
stop)
    for i in 1 2 3; do
        pid_file="$dir/n$i.pid"
        [[ -f $pid_file ]] || continue
        pid=$(cat "$pid_file")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pid_file"
    done
    ;;
env)
    echo "LIVECORE_NATS_URLS=$(urls)"
    echo "LIVECORE_NATS_DIR=$dir"
    echo "LIVECORE_NATS_USER=$user"
    echo "LIVECORE_NATS_PASSWORD=$password"
    ;;
*)
    echo "usage: cluster.sh start|stop|env DIR" >&2
    exit 2
    ;;
esac
