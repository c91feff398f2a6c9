#!/usr/bin/env bash
# What archiving every live stream costs: server CPU for N (50) passthrough RTMP publishers of
# the same 720p30 H.264 + AAC clip (`ffmpeg -re -stream_loop -1 -c copy`, BITRATE 3M), for
# Estuary with its archive on (the default), Estuary with it off, and nginx-rtmp writing HLS
# (Debian's libnginx-mod-rtmp, one worker, 2 s fragments), one after the other in one run.
# Server CPU is utime+stime from /proc over WINDOW (20) s after a 10 s warm-up.
#
#   cargo build --release --bin estuary && benches/archive_cpu.sh
#   MODE=long N=10 BITRATE=500k MINUTES=120 benches/archive_cpu.sh   # Estuary's archive over a long stream
#   MODE=long N=10 BITRATE=500k READRATE=4 MINUTES=30 EVERY=5 benches/archive_cpu.sh   # the same, 4x
#
# MODE=long keeps one Estuary (archive on) with N publishers for MINUTES and prints the server's
# CPU for every EVERY (10) minutes, and the archive's length then: a cost that grows with the
# recording's age shows there. READRATE (1) is how much faster than real time the publishers
# send: at 4, 30 minutes make a two-hour archive. SENDFILE=false turns [http] sendfile off. Files go to a temporary directory under TMPDIR (/tmp); a long
# run writes N x BITRATE x MINUTES of archive there.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ESTUARY_BIN:-${CARGO_TARGET_DIR:-target}/release/estuary}
N=${N:-50}
WINDOW=${WINDOW:-20}
BITRATE=${BITRATE:-3M}
MODE=${MODE:-compare}
MINUTES=${MINUTES:-120}
EVERY=${EVERY:-10}
work=$(mktemp -d)
pids=()
# The servers' logs are kept in LOGS (/tmp/archive_cpu-logs).
LOGS=${LOGS:-/tmp/archive_cpu-logs}
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  mkdir -p "$LOGS"; cp "$work"/*.log "$LOGS"/ 2>/dev/null || true; rm -rf "$work"
}
trap cleanup EXIT
BASE=${PORT_BASE:-18380}   # HTTP; RTMP and SRT on the next two
HTTP=$BASE; RTMP=$((BASE + 1)); SRT=$((BASE + 2))
TCK=$(getconf CLK_TCK)

ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t 10 -c:v libx264 -preset veryfast -b:v "$BITRATE" -maxrate "$BITRATE" -bufsize 6M -g 60 -pix_fmt yuv420p \
  -c:a aac -b:a 128k "$work/clip.flv"

estuary_config() { # $1: archive enabled (true/false)
  echo "[server]"; echo "data_dir = \"$work/data\""
  echo "[http]"; echo "listen = \"127.0.0.1:$HTTP\""; echo "sendfile = ${SENDFILE:-true}"
  echo "[rtmp]"; echo "listen = \"127.0.0.1:$RTMP\""
  echo "[srt]"; echo "listen = \"127.0.0.1:$SRT\""
  echo "[whip]"; echo "enabled = false"
  echo "[archive]"; echo "enabled = $1"
  echo "[transcode]"; echo "enabled = false"   # ingest, packaging and archive, not the ladder
  for i in $(seq "$N"); do echo "[[streams]]"; echo "name = \"s$i\""; echo "key = \"bench-key-$i\""; done
}

cpu_ticks() { local p t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }

# Starts the server of kind $1; sets server_pids.
start_server() {
  rm -rf "$work/data" "$work/hls"; mkdir -p "$work/hls"
  case $1 in
    estuary-archive|estuary-no-archive)
      estuary_config "$([ "$1" = estuary-archive ] && echo true || echo false)" > "$work/estuary.toml"
      RUST_LOG=warn "$BIN" serve --config "$work/estuary.toml" > "$work/$1.log" 2>&1 &
      server_pids=$!; pids+=($!)
      for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done ;;
    nginx-rtmp)
      cat > "$work/nginx.conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$RTMP;
    application live { live on; hls on; hls_path $work/hls; hls_fragment 2s; hls_playlist_length 20s; hls_nested on; }
  }
}
NGINX
      nginx -c "$work/nginx.conf" -g 'daemon off;' & pids+=($!)
      local master=$!
      sleep 0.5
      server_pids="$master $(pgrep -P "$master" | tr '\n' ' ')" ;;
  esac
}

publish() {
  pubs=()
  for i in $(seq "$N"); do
    ffmpeg -hide_banner -loglevel error -nostdin -readrate "${READRATE:-1}" -stream_loop -1 -i "$work/clip.flv" -c copy -f flv \
      "rtmp://127.0.0.1:$RTMP/live/bench-key-$i" 2>>"$work/ffmpeg.log" &
    pubs+=($!); pids+=($!)
  done
}

stop_all() {
  for p in "${pubs[@]}" $server_pids; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=(); sleep 1
}

echo "$N publishers of 720p30 $BITRATE H.264 + AAC 128k; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
if [ "$MODE" = long ]; then
  every=$((EVERY * 60))
  start_server estuary-archive; publish
  printf '%-10s %12s %12s %20s\n' minutes "server CPU" "per stream" "archive segments"
  last=$(cpu_ticks $server_pids)
  for m in $(seq "$EVERY" "$EVERY" "$MINUTES"); do
    sleep "$every"
    now=$(cpu_ticks $server_pids)
    segs=$(cat "$work"/data/archive/s1-*/video/index.m3u8 2>/dev/null | grep -c '^#EXTINF' || true)
    printf '%-10s %11s%% %11s%% %20s\n' "$((m - EVERY))-$m" \
      "$(awk -v a="$last" -v b="$now" -v t="$TCK" -v w="$every" 'BEGIN {printf "%.1f", (b - a) / t / w * 100}')" \
      "$(awk -v a="$last" -v b="$now" -v t="$TCK" -v w="$every" -v n="$N" 'BEGIN {printf "%.2f", (b - a) / t / w * 100 / n}')" "$segs"
    last=$now
  done
  stop_all
  exit 0
fi
printf '%-20s %12s %12s\n' server "server CPU" "per stream"
for kind in ${KINDS:-estuary-archive estuary-no-archive nginx-rtmp}; do
  start_server "$kind"; publish
  sleep 10
  a=$(cpu_ticks $server_pids); sleep "$WINDOW"; b=$(cpu_ticks $server_pids)
  pct=$(awk -v a="$a" -v b="$b" -v t="$TCK" -v w="$WINDOW" 'BEGIN {printf "%.1f", (b - a) / t / w * 100}')
  printf '%-20s %11s%% %11s%%\n' "$kind" "$pct" "$(awk -v p="$pct" -v n="$N" 'BEGIN {printf "%.2f", p / n}')"
  stop_all
done
