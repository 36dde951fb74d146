"""The contract between a camera's compressed video and the live-view service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

import av


@runtime_checkable
class LiveSource(Protocol):
    """One camera's video as H.264 packets, read by exactly one consumer (the camera's feed).

    ``packets()`` yields Annex B access units (start codes, SPS/PPS in band before each IDR), in decode order
    with no B-frames, each with ``pts`` in its ``time_base`` and ``is_keyframe`` set on IDR frames. It paces
    itself to real time and ends only when the source is finished or closed; it raises on failure.
    """

    @property
    def name(self) -> str:
        """Short description for logs (never a URL with credentials)."""
        ...

    @property
    def key_frame_on_request(self) -> bool:
        """True when ``request_key_frame`` makes the next packet a key frame (sources the hub encodes)."""
        ...

    def packets(self) -> AsyncIterator[av.Packet[Any]]:
        """The packets, from now on."""
        ...

    def request_key_frame(self) -> None:
        """Ask for a key frame soon. Passthrough sources cannot; their viewers wait for the next IDR."""
        ...
