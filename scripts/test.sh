#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests drive (ffmpeg/ffprobe, srt-tools, Chromium,
# GStreamer's RTSP server, redis-server, prometheus, PostgreSQL) on Debian/Ubuntu when it is missing. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v srt-live-transmit >/dev/null 2>&1 || missing+=(srt-tools)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM:-}" ] || missing+=(chromium)
# The catalog's tests start a PostgreSQL server of their own (tests/common/postgres.rs).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
# The RTSP camera of tests/rtsp.rs: GStreamer's RTSP server from Python, x264/x265, AAC.
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' >/dev/null 2>&1 ||
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base)
command -v gst-inspect-1.0 >/dev/null 2>&1 || missing+=(gstreamer1.0-tools)
for plugin in x264enc:gstreamer1.0-plugins-ugly x265enc:gstreamer1.0-plugins-bad \
  rtph264pay:gstreamer1.0-plugins-good avenc_aac:gstreamer1.0-libav; do
  gst-inspect-1.0 "${plugin%%:*}" >/dev/null 2>&1 || missing+=("${plugin##*:}")
done
scripts/apt-install.sh ${missing[@]+"${missing[@]}"}

# FFmpeg's libraries, clang and pkg-config for building the transcoder.
scripts/build-deps.sh

# hls.js, dash.js and playwright-core for the real-player tests, at the versions in package-lock.json.
if [ ! -d tests/player/node_modules ] || [ tests/player/package-lock.json -nt tests/player/node_modules ]; then
  (cd tests/player && npm ci --no-audit --no-fund --loglevel=error)
fi

# An S3-compatible server for the object-storage archive test (tests/vod.rs): moto's server, in a
# virtualenv of its own (Debian's python3 with python3-venv).
S3_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/estuary/s3-venv"
if [ ! -x "$S3_VENV/bin/moto_server" ]; then
  /usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || scripts/apt-install.sh python3-venv
  rm -rf "$S3_VENV"
  /usr/bin/python3 -m venv "$S3_VENV"
  "$S3_VENV/bin/pip" install -q 'moto[server]==5.2.5'
fi
export ESTUARY_S3_SERVER="$S3_VENV/bin/moto_server"

cargo test --workspace --locked "$@"
