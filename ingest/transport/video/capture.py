"""``Capture``: the one thread that holds a camera's stream open, reconnecting with backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.source import SourceError, open_source

log = logging.getLogger(__name__)


class Capture:
    """Opens ``config.url`` once, hands every packet to ``on_packet`` and reconnects after failures.

    The callbacks run on the capture thread and must not block. Backoff doubles from ``backoff_min`` to
    ``backoff_max`` and resets once a connection has delivered packets.
    """

    def __init__(
        self,
        config: CameraConfig,
        on_open: Callable[[StreamInfo], None],
        on_packet: Callable[[VideoPacket], None],
        on_error: Callable[[str, str], None],
        *,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.config = config
        self._on_open = on_open
        self._on_packet = on_packet
        self._on_error = on_error
        self._backoff_min = backoff_min
        self._backoff_max = backoff_max
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{config.id}", daemon=True)
        self.generation = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        backoff = self._backoff_min
        read_timeout = min(max(1.0, self.config.loss_after_s), 5.0)
        while not self._stop.is_set():
            self.generation += 1
            delivered = False
            source = None
            try:
                source = open_source(self.config, self._stop, self.generation, read_timeout)
                self._on_open(source.info)
                for packet in source.packets():
                    delivered = True
                    self._on_packet(packet)
                    if self._stop.is_set():
                        break
            except SourceError as exc:
                if not self._stop.is_set():
                    self._on_error(exc.reason, exc.detail)
            except Exception as exc:  # a bug or an unexpected library error must not end the camera
                log.exception("camera %s: capture failed", self.config.id)
                self._on_error("internal", repr(exc))
            finally:
                if source is not None:
                    try:
                        source.close()
                    except Exception:
                        log.debug("camera %s: close failed", self.config.id, exc_info=True)
            if self._stop.is_set():
                break
            if delivered:
                backoff = self._backoff_min
            log.info("camera %s: reconnecting in %.1f s", self.config.id, backoff)
            if self._stop.wait(backoff):
                break
            backoff = min(self._backoff_max, backoff * 2)
