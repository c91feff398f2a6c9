#!/usr/bin/env bash
# Server CPU per published stream, SRT beside RTMP, for 1, 10 and 50 concurrent publishers, in
# one run. Publishers are `ffmpeg -re -stream_loop -1 -c copy` of the same 720p30 2 Mbit/s
# H.264 + AAC clip (FLV for RTMP, MPEG-TS for SRT), so they cost little and all streams carry the
# same bytes. Server CPU is utime+stime from /proc over a 20 s window after an 8 s warm-up.
#
#   cargo build --release && benches/ingest_cpu.sh
#   ESTUARY_BIN=/path/to/estuary PROTOS=rtmp COUNTS="10 50" benches/ingest_cpu.sh   # another build, RTMP only
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ESTUARY_BIN:-${CARGO_TARGET_DIR:-target}/release/estuary}
COUNTS=${COUNTS:-"1 10 50"}
PROTOS=${PROTOS:-"rtmp srt"}
WINDOW=${WINDOW:-20}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
HTTP=18280; RTMP=12935; SRT=19300
TCK=$(getconf CLK_TCK)

ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
  -t 10 -c:v libx264 -preset veryfast -b:v 2M -maxrate 2M -bufsize 4M -g 60 -pix_fmt yuv420p -c:a aac -b:a 128k "$work/clip.flv"
ffmpeg -hide_banner -loglevel error -y -i "$work/clip.flv" -c copy -f mpegts "$work/clip.ts"

{
  echo "[server]"; echo "data_dir = \"$work/data\""
  echo "[http]"; echo "listen = \"127.0.0.1:$HTTP\""
  echo "[rtmp]"; echo "listen = \"127.0.0.1:$RTMP\""
  echo "[srt]"; echo "listen = \"127.0.0.1:$SRT\""
  echo "[transcode]"; echo "enabled = false"   # ingest and packaging only, not the ladder
  for i in $(seq 50); do echo "[[streams]]"; echo "name = \"s$i\""; echo "key = \"bench-key-$i\""; done
} > "$work/estuary.toml"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "clip: 720p30 2 Mbit/s + AAC 128k; window ${WINDOW}s; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-6s %5s %8s %12s %14s\n' proto n live "server CPU" "per stream"
for proto in $PROTOS; do
  for n in $COUNTS; do
    RUST_LOG=warn "$BIN" serve --config "$work/estuary.toml" > "$work/estuary-$proto-$n.log" 2>&1 &
    server=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$HTTP/healthz" >/dev/null && break; sleep 0.1; done
    pubs=()
    for i in $(seq "$n"); do
      if [ "$proto" = rtmp ]; then
        url="rtmp://127.0.0.1:$RTMP/live/bench-key-$i"; in="$work/clip.flv"; fmt=flv
      else
        url="srt://127.0.0.1:$SRT?streamid=publish:bench-key-$i&latency=120000"; in="$work/clip.ts"; fmt=mpegts
      fi
      ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$in" -c copy -f "$fmt" "$url" 2>>"$work/ffmpeg.log" &
      pubs+=($!)
    done
    sleep 8
    a=$(cpu_ticks "$server")
    sleep "$WINDOW"
    b=$(cpu_ticks "$server")
    live=$(curl -sf "http://127.0.0.1:$HTTP/api/v1/streams" | grep -o '"live":true' | wc -l)
    pct=$(awk -v a="$a" -v b="$b" -v t="$TCK" -v w="$WINDOW" 'BEGIN {printf "%.1f", (b - a) / t / w * 100}')
    per=$(awk -v p="$pct" -v n="$n" 'BEGIN {printf "%.2f", p / n}')
    printf '%-6s %5s %8s %11s%% %13s%%\n' "$proto" "$n" "$live" "$pct" "$per"
    for p in "${pubs[@]}"; do kill "$p" 2>/dev/null || true; done
    kill "$server"; wait "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    sleep 1
  done
done
