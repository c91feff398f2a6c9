#!/usr/bin/env python3
"""Writes a large seed for the `rtmp_session` target to the path given: mode 1 (handshake
already done), then what a publisher sends: a 64 KiB chunk size, connect, createStream,
publish, and one H.264 keyframe message of about a megabyte, so the fuzzer starts from an
input near `-max_len` that reaches the publishing limits."""
import struct
import sys


def amf_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf_num(n):
    return b"\x00" + struct.pack(">d", n)


def message(csid, type_id, stream, body, chunk):
    out = bytes([csid]) + b"\0\0\0" + struct.pack(">I", len(body))[1:] + bytes([type_id])
    out += struct.pack("<I", stream)
    for i in range(0, len(body), chunk):
        if i:
            out += bytes([0xC0 | csid])
        out += body[i : i + chunk]
    return out


CHUNK = 65536
seed = b"\x01\x4f"  # mode 1, slice 1 + 0x4f * 13 bytes
seed += message(2, 1, 0, struct.pack(">I", CHUNK), 128)
connect = amf_str("connect") + amf_num(1) + b"\x03" + b"\x00\x03app" + amf_str("live") + b"\x00\x00\x09"
seed += message(3, 20, 0, connect, CHUNK)
seed += message(3, 20, 0, amf_str("createStream") + amf_num(2) + b"\x05", CHUNK)
seed += message(4, 20, 1, amf_str("publish") + amf_num(3) + b"\x05" + amf_str("key1") + amf_str("live"), CHUNK)
# AVC sequence header, then a keyframe NALU of ~1 MB.
avcc = bytes([1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0xC0, 0x1E, 1, 0, 4, 0x68, 0xCE, 0x3C, 0x80])
seed += message(6, 9, 1, bytes([0x17, 0, 0, 0, 0]) + avcc, CHUNK)
nalu = bytes([0x65]) + bytes((i * 7) & 0xFF for i in range(1_000_000))
seed += message(6, 9, 1, bytes([0x17, 1, 0, 0, 0]) + struct.pack(">I", len(nalu)) + nalu, CHUNK)
open(sys.argv[1], "wb").write(seed)
print(len(seed), "bytes")
