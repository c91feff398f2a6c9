#!/usr/bin/python3
"""A camera-like RTSP server for tests: GStreamer's RTSP server (Debian packages
gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-{base,good,ugly}, gstreamer1.0-libav).

Usage: camera.py PORT [USER PASS] [--hevc] [--file=VIDEO.mp4]
Serves rtsp://127.0.0.1:PORT/cam: 640x360 25 fps H.264 (or H.265) with a keyframe every 2 s,
plus 48 kHz stereo AAC, live, like an IP camera. With --file, serves that MP4's H.264 video
track instead, paced in real time (the latency bench). Prints "ready" once listening.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

args = [a for a in sys.argv[1:] if not a.startswith("--")]
hevc = "--hevc" in sys.argv
video_file = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--file=")), None)
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(args[0])
if hevc:
    video = "x265enc tune=zerolatency speed-preset=ultrafast key-int-max=50 ! rtph265pay name=pay0 pt=96 config-interval=1"
else:
    video = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=50 bitrate=800 ! rtph264pay name=pay0 pt=96 config-interval=1"
factory = GstRtspServer.RTSPMediaFactory()
if video_file:
    factory.set_launch(
        "( filesrc location=" + video_file + " ! qtdemux ! h264parse ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
else:
    factory.set_launch(
        "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=25/1 ! "
        + video
        + " audiotestsrc is-live=true wave=sine ! audio/x-raw,rate=48000,channels=2 ! "
        "avenc_aac ! aacparse ! rtpmp4gpay name=pay1 pt=97 )"
    )
factory.set_shared(True)
if len(args) >= 3:
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args[1], args[2]), token)
    server.set_auth(auth)
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("user", "media.factory.access", True)
    perms.add_permission_for_role("user", "media.factory.construct", True)
    factory.set_permissions(perms)
server.get_mount_points().add_factory("/cam", factory)
if server.attach(None) == 0:
    sys.exit("could not listen on port " + args[0])
print("ready", flush=True)
GLib.MainLoop().run()
