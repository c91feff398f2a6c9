#!/usr/bin/env bash
# Time to package an uploaded MP4 into CMAF HLS + DASH without re-encoding: Estuary beside
# ffmpeg's own `-c copy` HLS (fMP4) and DASH muxers on the same file, one after the other in one
# run, ROUNDS (3) times each.
#
#   cargo build --release --bin estuary && benches/package.sh [SECONDS] [HEIGHT]
#
# The file (SECONDS, 600, of HEIGHT, 1080, p30 H.264 veryfast at 6 Mbit/s with a keyframe every
# 2 s and 128 kbit/s AAC) is made once with ffmpeg and kept in ~/.cache/estuary/bench. Estuary
# runs with its data and archive on /dev/shm; the file goes in through a direct upload URL with
# one tus creation-with-upload request (curl -T), and Estuary's time is the one its log gives
# from taking the finished upload to the asset ready (its "asset ready" line: demux, cut,
# CMAF, playlists, MPD, written to the archive store). ffmpeg's times are wall clock for each
# muxer alone, writing to /dev/shm too. Needs ffmpeg, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${ESTUARY_BIN:-${CARGO_TARGET_DIR:-target}/release/estuary}
SECS=${1:-600}
HEIGHT=${2:-1080}
ROUNDS=${ROUNDS:-3}
HTTP=18190
cache=${XDG_CACHE_HOME:-$HOME/.cache}/estuary/bench
clip=$cache/clip-${HEIGHT}p-${SECS}s.mp4
mkdir -p "$cache"
if [ ! -s "$clip" ]; then
  echo "making $clip (once)..."
  ffmpeg -hide_banner -loglevel error -nostdin -y \
    -f lavfi -i "testsrc2=size=$((HEIGHT * 16 / 9))x$HEIGHT:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$SECS" \
    -c:v libx264 -preset veryfast -b:v 6M -maxrate 6M -bufsize 12M -g 60 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -movflags +faststart "$clip.tmp.mp4"
  mv "$clip.tmp.mp4" "$clip"
fi
size=$(stat -c %s "$clip")
echo "file: $clip ($size bytes, ${SECS} s)"

work=$(mktemp -d /dev/shm/estuary-package.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
. benches/uploads.sh
start_estuary "$work" "$HTTP" "max_size_mb = 8192"

field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
estuary_round() {
  local id asset took
  id=$(direct_upload "$HTTP")
  tus_put "$HTTP" "$id" "$clip"
  asset=$(curl -sf -H "Authorization: Bearer $BENCH_TOKEN" "http://127.0.0.1:$HTTP/api/v1/uploads/$id" | field '["asset_id"]')
  # Until its "asset ready" line (logged just after the catalog says ready) or an error.
  for _ in $(seq 1200); do
    grep "asset ready" "$work/estuary.log" | grep -q "$asset" && break
    curl -sf -H "Authorization: Bearer $BENCH_TOKEN" "http://127.0.0.1:$HTTP/api/v1/assets/$asset" |
      grep -q '"status":"errored"' && break
    sleep 0.1
  done
  took=$(grep "asset ready" "$work/estuary.log" | grep "$asset" | sed -n 's/.*took_s=\([0-9.]*\).*/\1/p')
  [ -n "$took" ] || { grep "$asset" "$work/estuary.log" >&2; exit 1; }
  # Each round on an empty archive, as ffmpeg's on an empty directory.
  curl -sf -o /dev/null -X DELETE -H "Authorization: Bearer $BENCH_TOKEN" "http://127.0.0.1:$HTTP/api/v1/assets/$asset"
  echo "$took"
}
ffmpeg_round() {
  local out=$work/ffmpeg start end
  rm -rf "$out"; mkdir -p "$out"
  start=$(date +%s.%N)
  if [ "$1" = hls ]; then
    ffmpeg -hide_banner -loglevel error -nostdin -i "$clip" -map 0 -c copy -f hls -hls_time 6 \
      -hls_playlist_type vod -hls_segment_type fmp4 "$out/index.m3u8"
  else
    ffmpeg -hide_banner -loglevel error -nostdin -i "$clip" -map 0 -c copy -f dash -seg_duration 6 \
      "$out/manifest.mpd"
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l | xargs printf '%.3f\n'
}

printf '%-6s %-28s %-24s %-24s\n' round "Estuary (HLS + DASH), s" "ffmpeg HLS fMP4, s" "ffmpeg DASH, s"
for r in $(seq "$ROUNDS"); do
  e=$(estuary_round); h=$(ffmpeg_round hls); m=$(ffmpeg_round dash)
  printf '%-6s %-28s %-24s %-24s\n' "$r" "$e ($(echo "$SECS / $e" | bc -l | xargs printf '%.0f')x real time)" "$h" "$m"
done
echo "Estuary's log for the last asset:"
grep "asset ready" "$work/estuary.log" | tail -1
