#!/usr/bin/env bash
# HTTP requests/s for a hot part and a media playlist: Estuary against nginx serving the same
# bytes from tmpfs, one after the other in one run, with wrk on the same machine.
#
#   cargo build --release && benches/http.sh [FILE.flv]
#
# Before each round the newest part and the live playlist are fetched again and copied for
# nginx, so both serve the same bytes and the part is still in the 20 s window. FILE.flv is published in a loop with `ffmpeg -c copy` (next to no CPU); without it the
# pipeline bench's 1080p30 6 Mbit/s file in $TMPDIR is used (run `cargo bench --bench pipeline`
# once to make it). Needs ffmpeg, nginx (nginx-light) and wrk. With EDGE=1 the origin also
# mirrors into a redis-server and an `estuary edge` serving from it is measured beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ESTUARY_BIN:-${CARGO_TARGET_DIR:-target}/release/estuary}
FLV=${1:-${TMPDIR:-/tmp}/bench-1080p30-6M.flv}
DUR=${DUR:-10}
CONN=${CONN:-64}
HTTP=18180; RTMP=11995; NGX=18181; EDGE_HTTP=18182; REDIS=18183
work=$(mktemp -d /dev/shm/estuary-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/estuary.toml" <<TOML
[server]
data_dir = "$work/data"
[http]
listen = "127.0.0.1:$HTTP"
sendfile = ${SENDFILE:-true}
[rtmp]
listen = "127.0.0.1:$RTMP"
[hls]
# A minute of window: the part fetched before a round must outlive all its runs.
window_segments = 30
[[streams]]
name = "bench"
key = "bench-key-123"
TOML
if [ "${EDGE:-0}" = 1 ]; then
  redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no > /dev/null & pids+=($!)
  printf '[redis]\nurl = "redis://127.0.0.1:%s"\n' $REDIS >> "$work/estuary.toml"
  printf '[server]\ndata_dir = "%s/edge"\n[http]\nlisten = "127.0.0.1:%s"\n[redis]\nurl = "redis://127.0.0.1:%s"\n' \
    "$work" $EDGE_HTTP $REDIS > "$work/edge.toml"
  sleep 0.3
  RUST_LOG=warn "$BIN" edge --config "$work/edge.toml" > "$work/edge.log" 2>&1 & pids+=($!)
fi
RUST_LOG=warn "$BIN" serve --config "$work/estuary.toml" > "$work/estuary.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null || { cat "$work/estuary.log" >&2; exit 1; }
ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$FLV" -c copy -f flv "rtmp://127.0.0.1:$RTMP/live/bench-key-123" & pids+=($!)

for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$HTTP/live/bench/video/index.m3u8" 2>/dev/null | grep -q '^#EXTINF'; then break; fi
  sleep 0.2
done
# Let the window fill (10 segments of 2 s) so the live playlist's size is steady.
sleep "${WARM:-22}"
refresh() {
  playlist=$(curl -sf "http://127.0.0.1:$HTTP/live/bench/video/index.m3u8")
  part=$(echo "$playlist" | grep '^#EXT-X-PART:' | tail -1 | sed 's/.*URI="\([^"]*\)".*/\1/')
  mkdir -p "$work/www/live/bench/video/$(dirname "$part")"
  curl -sf "http://127.0.0.1:$HTTP/live/bench/video/$part" -o "$work/www/live/bench/video/$part"
  echo "$playlist" > "$work/www/live/bench/video/index.m3u8"
  chmod 755 "$work"; chmod -R a+rX "$work/www"
}
refresh
echo "part: $part ($(stat -c %s "$work/www/live/bench/video/$part") bytes); playlist: $(echo "$playlist" | wc -c) bytes"

cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=100;
  types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s; }
  server { listen 127.0.0.1:$NGX; root $work/www; }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
sleep 0.5

# One wrk run; prints requests/s. Fails on any non-2xx answer.
rps() {
  local out code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$1")
  [ "$code" = 200 ] || { echo "$1 answered $code" >&2; exit 1; }
  out=$(wrk -t2 -c"$CONN" -d"${DUR}s" "$1")
  if echo "$out" | grep -q 'Non-2xx'; then echo "$out" >&2; exit 1; fi
  echo "$out" | awk '/Requests\/sec/ {print $2}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Runs alternate between the two servers, ROUNDS times each, so drift on a shared machine hits
# both alike; the median is reported with every run.
ROUNDS=${ROUNDS:-3}
compare() {
  local name=$1 what=$2 a=() b=() c=()
  for _ in $(seq "$ROUNDS"); do
    refresh
    local path="live/bench/video/index.m3u8"
    [ "$what" = part ] && path="live/bench/video/$part"
    a+=("$(rps "http://127.0.0.1:$HTTP/$path")")
    b+=("$(rps "http://127.0.0.1:$NGX/$path")")
    [ "${EDGE:-0}" = 1 ] && c+=("$(rps "http://127.0.0.1:$EDGE_HTTP/$path")")
  done
  if [ "${EDGE:-0}" = 1 ]; then
    printf '%-16s edge %10s req/s  (runs: %s)\n' "$name" "$(printf '%s\n' "${c[@]}" | median)" "${c[*]}"
  fi
  local ma mb
  ma=$(printf '%s\n' "${a[@]}" | median)
  mb=$(printf '%s\n' "${b[@]}" | median)
  printf '%-16s estuary %10s req/s  nginx %10s req/s  ratio %s   (runs: estuary %s; nginx %s)\n' \
    "$name" "$ma" "$mb" "$(awk -v x="$ma" -v y="$mb" 'BEGIN {printf "%.2f", x / y}')" "${a[*]}" "${b[*]}"
}
echo "wrk -t2 -c$CONN -d${DUR}s x $ROUNDS alternating, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
compare "hot part" part
compare "media playlist" playlist
