#!/usr/bin/env bash
# HTTP requests/s for a hot part and a media playlist: Estuary against nginx serving the same
# bytes from tmpfs, one after the other in one run, with wrk on the same machine.
#
#   cargo build --release && benches/http.sh [FILE.flv]
#
# The newest part at the start is measured; it stays in the window for ~20 s, so keep DUR
# at 15 s or less. FILE.flv is published in a loop with `ffmpeg -c copy` (next to no CPU); without it the
# pipeline bench's 1080p30 6 Mbit/s file in $TMPDIR is used (run `cargo bench --bench pipeline`
# once to make it). Needs ffmpeg, nginx (nginx-light) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ESTUARY_BIN:-${CARGO_TARGET_DIR:-target}/release/estuary}
FLV=${1:-${TMPDIR:-/tmp}/bench-1080p30-6M.flv}
DUR=${DUR:-10}
CONN=${CONN:-64}
HTTP=18180; RTMP=11995; NGX=18181
work=$(mktemp -d /dev/shm/estuary-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/estuary.toml" <<TOML
[server]
data_dir = "$work/data"
[http]
listen = "127.0.0.1:$HTTP"
[rtmp]
listen = "127.0.0.1:$RTMP"
[[streams]]
name = "bench"
key = "bench-key-123"
TOML
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
playlist=$(curl -sf "http://127.0.0.1:$HTTP/live/bench/video/index.m3u8")
part=$(echo "$playlist" | grep '^#EXT-X-PART:' | tail -1 | sed 's/.*URI="\([^"]*\)".*/\1/')
mkdir -p "$work/www/live/bench/video/$(dirname "$part")"
curl -sf "http://127.0.0.1:$HTTP/live/bench/video/$part" -o "$work/www/live/bench/video/$part"
echo "$playlist" > "$work/www/live/bench/video/index.m3u8"
chmod 755 "$work"; chmod -R a+rX "$work/www"
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

run() {
  local out code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$2")
  [ "$code" = 200 ] || { echo "$1: $2 answered $code" >&2; exit 1; }
  out=$(wrk -t2 -c"$CONN" -d"${DUR}s" "$2")
  if echo "$out" | grep -q 'Non-2xx'; then echo "$out" >&2; exit 1; fi
  printf '%-26s %10s req/s %10s/s  latency avg %s\n' "$1" \
    "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | awk '/Transfer\/sec/ {print $2}')" \
    "$(echo "$out" | awk '/Latency/ {print $2; exit}')"
}
echo "wrk -t2 -c$CONN -d${DUR}s, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
run "estuary hot part"      "http://127.0.0.1:$HTTP/live/bench/video/$part"
run "nginx   same part"     "http://127.0.0.1:$NGX/live/bench/video/$part"
run "estuary media playlist" "http://127.0.0.1:$HTTP/live/bench/video/index.m3u8"
run "nginx   same playlist"  "http://127.0.0.1:$NGX/live/bench/video/index.m3u8"
