#!/usr/bin/env python3
"""Raw video frames that carry the time they were sent, for glass-to-glass measurements.

Usage: clock_source.py WIDTH HEIGHT FPS SECONDS | ffmpeg -f rawvideo -pix_fmt yuv420p -s WxH -r FPS -i - ...

Writes yuv420p frames to stdout in real time (frame n at start + n/FPS). The top band of each
frame is a code a player page reads back (page.js), at any scale: 48 blocks across the
width (block i from WIDTH*i/48 to WIDTH*(i+1)/48), WIDTH/48 pixels tall, black for 0 and white
for 1, most significant bit first: the Unix time in milliseconds at which the frame was
written. Below it, a bar moves so the encoder has motion.
"""
import os
import sys
import time

BITS = 48


def main():
    width, height, fps, seconds = (int(a) for a in sys.argv[1:5])
    block = width // BITS
    edges = [round(width * i / BITS) for i in range(BITS + 1)]
    out = sys.stdout.buffer
    chroma = bytes([128]) * ((width // 2) * (height // 2) * 2)
    start = time.time()
    for n in range(int(seconds * fps)):
        due = start + n / fps
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        now_ms = int(time.time() * 1000)
        code = bytearray()
        for i in range(BITS):
            bit = (now_ms >> (BITS - 1 - i)) & 1
            code += bytes([235 if bit else 16]) * (edges[i + 1] - edges[i])
        luma = bytearray(bytes(code) * block)
        bar = (n * 8) % width
        row = bytearray([60]) * width
        row[bar:bar + 40] = bytes([200]) * len(row[bar:bar + 40])
        luma += bytes(row) * (height - block)
        try:
            out.write(luma)
            out.write(chroma)
            out.flush()
        except BrokenPipeError:
            os._exit(0)


if __name__ == "__main__":
    main()
