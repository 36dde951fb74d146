"""A real RTSP server for the camera simulator: Debian's GStreamer RTSP server, run by the system Python.

This file runs under ``/usr/bin/python3`` (which has ``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0``),
not the project's virtualenv, and therefore imports nothing from the project. It serves H.264 MPEG-TS files
as RTSP mounts, each client from the start of its file, in real time, over TCP or UDP:

    /usr/bin/python3 rtsp_server.py --port 0 --mount gate=/tmp/gate.ts --mount lake=/tmp/lake.ts

It binds 127.0.0.1 only and prints ``READY <port>`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi  # type: ignore[import-not-found]

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # type: ignore[import-not-found]  # noqa: E402


def launch_line(path: str) -> str:
    quoted = path.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f'( filesrc location="{quoted}" ! tsdemux ! h264parse config-interval=-1 ! '
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 for a free one")
    parser.add_argument("--mount", action="append", default=[], help="name=path of an H.264 MPEG-TS file")
    parser.add_argument("--exit-with-stdin", action="store_true", help="quit when stdin closes")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.mount:
        name, _, path = spec.partition("=")
        if not name or not path:
            sys.stderr.write(f"bad --mount {spec!r}: need name=path\n")
            return 2
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(path))
        factory.set_shared(False)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        mounts.add_factory(f"/{name}", factory)

    if server.attach(None) == 0:
        sys.stderr.write("cannot attach the RTSP server\n")
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    if args.exit_with_stdin:
        # The parent holds our stdin open; when it dies the pipe closes and we leave too (no orphans).
        def on_stdin(_fd: object, _cond: object) -> bool:
            loop.quit()
            return False

        GLib.io_add_watch(
            sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IOCondition.HUP | GLib.IOCondition.IN, on_stdin
        )
    sys.stdout.write(f"READY {server.get_bound_port()}\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
