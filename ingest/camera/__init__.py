"""IP cameras: RTSP, HTTP, files and a synthetic source; video analytics produce readings."""

from sharpeye.ingest.camera.driver import CameraDriver

driver = CameraDriver()

__all__ = ["driver"]
