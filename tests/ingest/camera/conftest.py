"""Camera test fixtures: scenario clips encoded once per session and a real RTSP server serving them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sharpeye.ingest.camera.model import ModelError, install
from sharpeye.simulators.camera.rtsp import RtspSimulator
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video

from tests.ingest.camera.clips import SPECS
from tests.ingest.camera.clips import write_clip as write_codec_clip
from tests.ingest.camera.support import SCENARIOS

# Every clip runs this long, so no RTSP client reaches the end (and replays the scenario) during a test.
CLIP_S = 30.0


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def scenario_clips(clip_dir: Path) -> dict[str, Path]:
    return {name: write_video(builtin(name), clip_dir / f"{name}.ts", duration_s=CLIP_S) for name in SCENARIOS}


@pytest.fixture(scope="session")
def cut_clip(clip_dir: Path) -> Path:
    """A clip that stops in the middle of a group of pictures (the file is cut mid-packet)."""
    full = write_video(builtin("intrusion"), clip_dir / "cut-full.ts", duration_s=4.5, gop_s=2.0)
    data = full.read_bytes()
    cut = clip_dir / "cut.ts"
    cut.write_bytes(data[: int(len(data) * 0.8) + 101])
    return cut


@pytest.fixture(scope="session")
def rtsp_sim(scenario_clips: dict[str, Path], cut_clip: Path) -> Iterator[RtspSimulator]:
    sim = RtspSimulator({**scenario_clips, "cut": cut_clip})
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def codec_clips(clip_dir: Path) -> dict[str, Path]:
    """Every clip of ``clips.SPECS``, encoded once per session."""
    return {spec.name: write_codec_clip(spec, clip_dir) for spec in SPECS}


@pytest.fixture(scope="session")
def detector_model() -> Path:
    """The object detector, installed as `sharpeye models install` does (scripts/test.sh runs it first; the
    install is skipped when the pinned model is already converted). Kept across sessions outside the repository."""
    root = Path(os.environ.get("SHARPEYE_TEST_MODEL_DIR", "~/.cache/sharpeye-tests")).expanduser()
    try:
        return install(root)
    except ModelError as exc:
        pytest.fail(f"no object detector for the tests: {exc}")
