#!/usr/bin/env bash
# Installs what building Estuary needs on Debian/Ubuntu when it is missing: the transcoder is
# built on FFmpeg's libraries (libav*-dev), found with pkg-config and bound with clang.
# (Without them: `cargo build --no-default-features`, and streams pass through untranscoded.)
set -euo pipefail
missing=()
for lib in libavcodec libavformat libavutil libswscale libswresample libavfilter libavdevice; do
  pkg-config --exists "$lib" 2>/dev/null || missing+=("$lib-dev")
done
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v clang >/dev/null 2>&1 || missing+=(clang)
[ -n "$(ls /usr/lib/llvm-*/lib/libclang*.so* 2>/dev/null)" ] || missing+=(libclang-dev)
"$(dirname "$0")/apt-install.sh" ${missing[@]+"${missing[@]}"}
