#!/usr/bin/env bash
# HTTP requests/s for a hot part and a media playlist: Estuary against nginx serving the same
# bytes from tmpfs, one after the other in one run, with wrk on the same machine.
#
#   cargo build --release && benches/http.sh [FILE.flv]
#
# Before each round the newest part and the live playlist are fetched again and copied for
# nginx, so both serve the same bytes and the part is still in the 60 s window. FILE.flv is
# published in a loop with `ffmpeg -c copy` (next to no CPU); without it the pipeline bench's
# 1080p30 6 Mbit/s file in $TMPDIR is used (run `cargo bench --bench pipeline` once to make it).
# Needs ffmpeg, nginx (nginx-light) and wrk. With EDGE=1 the origin also mirrors into a
# redis-server and an `estuary edge` serving from it is measured beside them. With H2=1 the
# requests are HTTP/2 (cleartext, prior knowledge; nginx listens with `http2`) from h2load
# (nghttp2-client), STREAMS (10) concurrent streams on each of the CONN connections. With
# SIGNED=1 the stream's playback is signed: every request to Estuary carries an HS256 token
# (minted here with openssl) that it verifies, and the playlists it serves carry it on.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ESTUARY_BIN:-${CARGO_TARGET_DIR:-target}/release/estuary}
FLV=${1:-${TMPDIR:-/tmp}/bench-1080p30-6M.flv}
DUR=${DUR:-10}
CONN=${CONN:-64}
HTTP=18180; RTMP=11995; NGX=18181; EDGE_HTTP=18182; REDIS=18183; SRT=18184
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
[srt]
listen = "127.0.0.1:$SRT"
[hls]
# A minute of window: the part fetched before a round must outlive all its runs.
window_segments = 30
[[streams]]
name = "bench"
key = "bench-key-123"
# HTTP is measured here, not the ladder: the transcoder would take a core from both servers.
transcode = false
TOML
Q=""
if [ "${SIGNED:-0}" = 1 ]; then
  secret="bench-secret-of-at-least-32-bytes-0123456789"
  printf 'playback = "signed"\n[playback]\nhs256_secrets = ["%s"]\n' "$secret" >> "$work/estuary.toml"
  b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
  jwt_head=$(printf '{"alg":"HS256","typ":"JWT"}' | b64url)
  jwt_body=$(printf '{"sub":"bench","aud":"live","exp":%d}' $(($(date +%s) + 86400)) | b64url)
  jwt_sig=$(printf '%s.%s' "$jwt_head" "$jwt_body" | openssl dgst -sha256 -hmac "$secret" -binary | b64url)
  Q="?token=$jwt_head.$jwt_body.$jwt_sig"
fi
if [ "${EDGE:-0}" = 1 ]; then
  redis-server --port $REDIS --bind 127.0.0.1 --save "" --appendonly no > /dev/null & pids+=($!)
  printf '[redis]\nurl = "redis://127.0.0.1:%s"\n' $REDIS >> "$work/estuary.toml"
  printf '[server]\ndata_dir = "%s/edge"\n[http]\nlisten = "127.0.0.1:%s"\n[redis]\nurl = "redis://127.0.0.1:%s"\n' \
    "$work" $EDGE_HTTP $REDIS > "$work/edge.toml"
  sleep 0.3
  RUST_LOG=warn "$BIN" edge --config "$work/edge.toml" > "$work/edge.log" 2>&1 & pids+=($!)
  edge_pid=$!
fi
RUST_LOG=warn "$BIN" serve --config "$work/estuary.toml" > "$work/estuary.log" 2>&1 & pids+=($!)
estuary_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null || { cat "$work/estuary.log" >&2; exit 1; }
ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$FLV" -c copy -f flv "rtmp://127.0.0.1:$RTMP/live/bench-key-123" & pids+=($!)

for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$HTTP/live/bench/video/index.m3u8$Q" 2>/dev/null | grep -q '^#EXTINF'; then break; fi
  sleep 0.2
done
# Let the window fill (10 segments of 2 s) so the live playlist's size is steady.
sleep "${WARM:-22}"
refresh() {
  playlist=$(curl -sf "http://127.0.0.1:$HTTP/live/bench/video/index.m3u8$Q")
  # The newest full-length part that is not a keyframe part: the same kind of part every round.
  local target
  target=$(echo "$playlist" | sed -n 's/^#EXT-X-PART-INF:PART-TARGET=//p')
  part=$(echo "$playlist" | grep '^#EXT-X-PART:' | grep -v 'INDEPENDENT\|GAP=YES' |
    awk -F'DURATION=' -v t="$target" '{split($2, d, ","); if (d[1] >= 0.9 * t) print}' |
    tail -1 | sed 's/.*URI="\([^"?]*\)[?"].*/\1/')
  mkdir -p "$work/www/live/bench/video/$(dirname "$part")"
  curl -sf "http://127.0.0.1:$HTTP/live/bench/video/$part$Q" -o "$work/www/live/bench/video/$part"
  # A new file, not a rewrite: nginx's open_file_cache keeps the old one's size for a while.
  echo "$playlist" > "$work/www/live/bench/video/index.m3u8.new"
  mv "$work/www/live/bench/video/index.m3u8.new" "$work/www/live/bench/video/index.m3u8"
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
  # nginx closes a connection after 1000 requests by default; Estuary does not. h2load does not
  # reconnect, and wrk's reconnects would cost nginx a little.
  keepalive_requests 1000000;
  types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s; }
  server { listen 127.0.0.1:$NGX${H2:+ http2}; root $work/www; }
}
NGINX
nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
sleep 0.5
nginx_pids=$(pgrep -P $! | tr '\n' ' ')

# CPU time (user + system, clock ticks) of the given processes, threads that ended included.
cpu_ticks() {
  local p total=0
  for p in "$@"; do
    total=$((total + $(sed 's/.*) //' /proc/"$p"/stat | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# One wrk (or h2load) run against URL; the rest are the server's processes. Prints requests/s and the
# server's CPU microseconds per request. Fails on any non-2xx answer or socket error.
rps() {
  local url=$1 out code c0 c1 n
  shift
  code=$(curl -s ${H2:+--http2-prior-knowledge} -o /dev/null -w '%{http_code}' "$url")
  [ "$code" = 200 ] || { echo "$url answered $code" >&2; exit 1; }
  c0=$(cpu_ticks "$@")
  if [ -n "${H2:-}" ]; then
    out=$(h2load -t2 -c"$CONN" -m"${STREAMS:-10}" -D"$DUR" "$url" 2>&1 | grep -v '^Process Request Failure\|^Main benchmark\|^Stopped all')
    c1=$(cpu_ticks "$@")
    # Streams still open when the duration ends count as failed; more than that is an error.
    if [ "$(echo "$out" | awk '/^requests:/ {print $10}')" -gt $((CONN * ${STREAMS:-10})) ] ||
      echo "$out" | grep '^status codes:' | grep -vq ' 0 3xx, 0 4xx, 0 5xx'; then
      echo "$out" >&2
      exit 1
    fi
    n=$(echo "$out" | awk '/^requests:/ {print $6}')
    echo "$out" | awk -v n="$n" -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
      '/^finished in/ {printf "%d %.1f\n", $4, c / hz / n * 1e6}'
    return
  fi
  out=$(wrk -t2 -c"$CONN" -d"${DUR}s" "$url")
  c1=$(cpu_ticks "$@")
  if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then echo "$out" >&2; exit 1; fi
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$out" | awk -v n="$n" -v c=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
    '/Requests\/sec/ {printf "%d %.1f\n", $2, c / hz / n * 1e6}'
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Runs alternate between the servers, ROUNDS times each, so drift on a shared machine hits all
# alike; the median is reported with every run. us/req: the server's CPU time (all its threads,
# user + system) per request, which depends less than req/s on what else the machine is doing.
ROUNDS=${ROUNDS:-3}
compare() {
  local name=$1 what=$2 a=() b=() c=() r
  for _ in $(seq "$ROUNDS"); do
    refresh
    local path="live/bench/video/index.m3u8"
    [ "$what" = part ] && path="live/bench/video/$part"
    # The same query (a token with SIGNED=1) to every server; nginx ignores it.
    a+=("$(rps "http://127.0.0.1:$HTTP/$path$Q" "$estuary_pid")")
    # shellcheck disable=SC2086
    b+=("$(rps "http://127.0.0.1:$NGX/$path$Q" $nginx_pids)")
    [ "${EDGE:-0}" = 1 ] && c+=("$(rps "http://127.0.0.1:$EDGE_HTTP/$path$Q" "$edge_pid")")
  done
  report() { # label runs...
    local label=$1
    shift
    local rs us
    rs=$(printf '%s\n' "$@" | awk '{print $1}' | median)
    us=$(printf '%s\n' "$@" | awk '{print $2}' | median)
    printf '  %-8s %8s req/s %6s us/req   (runs: %s)\n' "$label" "$rs" "$us" \
      "$(printf '%s\n' "$@" | tr ' ' / | paste -sd ' ')"
    r=$rs
  }
  echo "$name"
  report estuary "${a[@]}"
  local ma=$r
  report nginx "${b[@]}"
  local mb=$r
  [ "${EDGE:-0}" = 1 ] && report edge "${c[@]}"
  # Each Estuary run against the nginx run right after it (the closest in time), and the median
  # of those ratios: less affected by the machine's drift than the ratio of the two medians.
  local paired
  paired=$(for i in "${!a[@]}"; do
    awk -v x="${a[$i]%% *}" -v y="${b[$i]%% *}" 'BEGIN {printf "%.3f\n", x / y}'
  done | median)
  awk -v x="$ma" -v y="$mb" -v p="$paired" \
    'BEGIN {printf "  estuary/nginx req/s: %.2f (medians), %.2f (median of paired runs)\n", x / y, p}'
}
client="wrk -t2 -c$CONN -d${DUR}s"
[ -n "${H2:-}" ] && client="h2load (HTTP/2) -t2 -c$CONN -m${STREAMS:-10} -D$DUR"
echo "$client x $ROUNDS alternating, $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)${Q:+; signed playback: a token on every request}"
compare "hot part" part
compare "media playlist" playlist
