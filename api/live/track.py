"""An aiortc video track that hands a feed's packets to its sender as they are (no decoding, no encoding)."""

from __future__ import annotations

from typing import Any

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from sharpeye.api.live.feed import FeedClosed, Subscription


class PacketTrack(MediaStreamTrack):
    """Reads one subscription; aiortc's H.264 packetizer splits each Annex B access unit into RTP packets."""

    kind = "video"

    def __init__(self, subscription: Subscription) -> None:
        super().__init__()
        self.subscription = subscription

    async def recv(self) -> av.Packet[Any]:
        try:
            return await self.subscription.get()
        except FeedClosed as exc:
            self.stop()
            raise MediaStreamError(exc.reason) from exc

    @property
    def pending(self) -> int:
        """Packets waiting for the sender: 0 means its next ``recv`` will wait (and so let others run)."""
        return self.subscription.pending

    def stop(self) -> None:
        self.subscription.close()
        super().stop()
