"""Recording test fixtures: the camera tests' codec clips, encoded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ingest.camera.clips import SPECS
from tests.ingest.camera.clips import write_clip as write_codec_clip


@pytest.fixture(scope="session")
def codec_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("recording-clips")
    return {spec.name: write_codec_clip(spec, directory) for spec in SPECS}
