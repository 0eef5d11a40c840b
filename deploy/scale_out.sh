#!/usr/bin/env bash
# Run N Streamlit replicas of the app on localhost and nginx in front of them, with sticky
# sessions and websocket upgrades. Everything runs in the foreground as children of this
# script; Ctrl-C (or SIGTERM) stops them all.
#
#   deploy/scale_out.sh [--redis] [-n REPLICAS] [-p PORT] [-b BASE_PORT] [-a APP] [-l ADDRESS]
#
#   -n  replicas (default 2)         -p  port nginx listens on (default 8080)
#   -b  first replica port (default 8601; replica i listens on BASE_PORT + i)
#   -a  app script (default streamlit_app.py)
#   -l  address nginx listens on (default 127.0.0.1; 0.0.0.0 for a classroom)
#   --redis  the replicas share their classroom rooms through one Redis: FME_ROOMS_URL if set,
#       else a redis-server started here on port BASE_PORT + REPLICAS (without it they share the SQLite
#       file under data/, which serves replicas on one machine only)
#
# Each replica starts one training engine (a process stepping all its sessions' models in one
# batched step); with FME_ENGINE_SLOTS set, each engine trains at most that many at once.
# nginx comes from Debian: installed with apt-get when missing (needs root).
set -euo pipefail

replicas=2 port=8080 base_port=8601 app=streamlit_app.py address=127.0.0.1 redis=0
options=()
for arg in "$@"; do
    if [[ $arg == --redis ]]; then redis=1; else options+=("$arg"); fi
done
set -- "${options[@]+"${options[@]}"}"
while getopts "n:p:b:a:l:h" opt; do
    case $opt in
        n) replicas=$OPTARG ;;
        p) port=$OPTARG ;;
        b) base_port=$OPTARG ;;
        a) app=$OPTARG ;;
        l) address=$OPTARG ;;
        *) sed -n '2,19p' "$0"; exit 2 ;;
    esac
done
for value in "$replicas" "$port" "$base_port"; do
    [[ $value =~ ^[0-9]+$ ]] || { echo "scale_out: '$value' is not a number; see $0 -h" >&2; exit 2; }
done
(( replicas >= 1 )) || { echo "scale_out: need at least one replica" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
streamlit=${STREAMLIT:-$root/.venv/bin/streamlit}
[[ -x $streamlit ]] || { echo "scale_out: $streamlit not found; run 'make setup' first" >&2; exit 1; }
[[ -f $app ]] || { echo "scale_out: app script '$app' not found" >&2; exit 1; }

nginx=$(command -v nginx || true)
[[ -z $nginx && -x /usr/sbin/nginx ]] && nginx=/usr/sbin/nginx
if [[ -z $nginx ]]; then
    echo "scale_out: nginx not found; installing it with apt-get" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } \
        || { echo "scale_out: could not install nginx; run 'apt-get install nginx' as root" >&2; exit 1; }
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
fi

prefix=$(mktemp -d "${TMPDIR:-/tmp}/fme-scale-out.XXXXXX")
chmod 755 "$prefix"
pids=()
stop() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$prefix"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# One Redis for the rooms of all replicas (--redis), started here unless FME_ROOMS_URL names one.
if (( redis )) && [[ -z ${FME_ROOMS_URL:-} ]]; then
    redis_server=$(command -v redis-server || true)
    if [[ -z $redis_server ]]; then
        echo "scale_out: redis-server not found; installing it with apt-get" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
            || { echo "scale_out: could not install redis-server; run 'apt-get install redis-server' as root" >&2; exit 1; }
        redis_server=$(command -v redis-server)
    fi
    redis_port=$((base_port + replicas))
    "$redis_server" --port "$redis_port" --bind 127.0.0.1 --dir "$prefix" --save "" --appendonly no \
        >"$prefix/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && break
        kill -0 "${pids[-1]}" 2>/dev/null || { echo "scale_out: redis-server exited:" >&2; cat "$prefix/redis.log" >&2; exit 1; }
        sleep 0.1
    done
    export FME_ROOMS_URL=redis://127.0.0.1:$redis_port/0
fi
rooms=${FME_ROOMS_URL:-"SQLite under ${FME_DATA_DIR:-data}/"}

# One secret for all replicas, so a cookie signed by one replica is valid on another.
secret=${FME_COOKIE_SECRET:-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}

# A replica that exits is started again: nginx sends its clients to the others meanwhile (their
# sessions on it are lost; the page reconnects to a fresh one).
supervise() {
    local replica_port=$1 child=""
    trap '[[ -n $child ]] && { kill "$child" 2>/dev/null; wait "$child"; }; exit 0' TERM INT
    while true; do
        FME_TRAINING=${FME_TRAINING:-engine} STREAMLIT_SERVER_COOKIE_SECRET=$secret \
            "$streamlit" run "$app" --server.address 127.0.0.1 --server.port "$replica_port" \
            --server.headless true --browser.gatherUsageStats false \
            >>"$prefix/replica-$replica_port.log" 2>&1 &
        child=$!
        wait "$child" || true
        echo "exited at $(date +%T)" >>"$prefix/replica-$replica_port.exits"
        echo "scale_out: replica on port $replica_port exited; restarting it" >&2
        sleep 1
    done
}

servers=""
for ((i = 0; i < replicas; i++)); do
    replica_port=$((base_port + i))
    supervise "$replica_port" &
    pids+=($!)
    servers+="        server 127.0.0.1:$replica_port;"$'\n'
done

sed -e "s|@PREFIX@|$prefix|g" -e "s|@ACCESS_LOG@|${FME_ACCESS_LOG:-off}|g" \
    -e "s|@LISTEN_ADDRESS@|$address|g" -e "s|@LISTEN_PORT@|$port|g" \
    "$here/nginx.conf.template" | awk -v servers="$servers" '{ if ($0 == "@UPSTREAM_SERVERS@") printf "%s", servers; else print }' \
    >"$prefix/nginx.conf"

for ((i = 0; i < replicas; i++)); do
    replica_port=$((base_port + i))
    for _ in $(seq 600); do
        curl -fsS "http://127.0.0.1:$replica_port/_stcore/health" >/dev/null 2>&1 && break
        [[ -s $prefix/replica-$replica_port.exits ]] \
            && { echo "scale_out: replica on port $replica_port exited:" >&2; tail -20 "$prefix/replica-$replica_port.log" >&2; exit 1; }
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$replica_port/_stcore/health" >/dev/null 2>&1 \
        || { echo "scale_out: replica on port $replica_port is not healthy after 60 s" >&2; exit 1; }
done

"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -t -q || exit 1
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" &
pids+=($!)
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/_stcore/health" >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "scale_out: nginx exited" >&2; exit 1; }
    sleep 0.1
done
upstreams=$(seq -s, "$base_port" $((base_port + replicas - 1)))
echo "scale_out: ready: http://$address:$port -> 127.0.0.1:{$upstreams} (one training engine each; rooms in $rooms; logs in $prefix)"
wait "${pids[-1]}" || true
echo "scale_out: nginx exited; stopping the replicas" >&2
exit 1
