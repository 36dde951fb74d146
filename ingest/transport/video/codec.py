"""``open_decoder``: a PyAV decoder set up as the container describes the stream.

Some codecs carry no frame size in their bitstream (MS-MPEG4 v3 "DIV3" in AVI, for one) and fail on every packet
unless the decoder is told the container's width and height; H.264/H.265 from MP4 or Matroska need the container's
extradata (avcC/hvcC) to read length-prefixed packets. Timestamps keep the stream's time base
(``StreamInfo.time_base``): callers set it on each ``av.Packet``. Every decoder of the camera stage opens through here.
"""

from __future__ import annotations

from typing import Any

import av
from sharpeye.ingest.transport.video.packet import StreamInfo


def open_decoder(info: StreamInfo, threads: int = 1) -> Any:
    """A decoding ``av.CodecContext`` for ``info``; raises ``ValueError`` (unknown codec) or ``av.FFmpegError``."""
    try:
        ctx: Any = av.CodecContext.create(info.codec, "r")
    except (av.FFmpegError, ValueError) as exc:
        raise ValueError(f"FFmpeg has no decoder for codec {info.codec!r}") from exc
    if info.width > 0 and info.height > 0:
        ctx.width = info.width
        ctx.height = info.height
    if info.extradata:
        ctx.extradata = info.extradata
    ctx.thread_count = threads
    return ctx
