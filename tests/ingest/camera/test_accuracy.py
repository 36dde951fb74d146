"""`sharpeye accuracy CLIP LABELS`: analytics scored on labelled clips through the hub's own decode and analysis
path: the labelled synthetic scenes, and a real clip (vtest.avi) with labels made for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sharpeye.ingest.camera.accuracy import LabelsFile, load_labels, score
from sharpeye.simulators.camera.scenario import builtin

from sharpeye.node.cli import main
from tests.ingest.camera.support import SCENARIOS
from tests.ingest.camera.test_codecs import VTEST

LABELS = Path(__file__).parent / "labels"


@pytest.mark.parametrize("name", [n for n in SCENARIOS if n != "tamper"])
def test_labelled_synthetic_scenes_score_perfectly(name: str, scenario_clips: dict[str, Path]) -> None:
    scenario = builtin(name)
    camera = scenario.camera
    expected = [e for e in scenario.expected if e.channel is not None]
    by_channel: dict[str, list[tuple[float, float]]] = {}
    kinds: dict[str, str] = {}
    for e in expected:
        by_channel.setdefault(e.channel or "", []).append((e.at_s, e.at_s + e.within_s))
        kinds[e.channel or ""] = e.kind
    labels = LabelsFile.model_validate(
        {
            "camera": camera,
            "labels": [{"channel": c, "kind": kinds[c], "intervals": iv} for c, iv in by_channel.items()],
            "tolerance_s": 0.0,
            "end_s": scenario.duration_s - 0.5,  # the clip runs longer than the scenario: score its first pass
        }
    )
    report = score(scenario_clips[name], labels)
    assert report.decode_errors == 0 and report.frames_analysed > 0
    for channel in report.channels:
        assert channel.recall == 1.0 and channel.precision == 1.0, report.table()
        assert max(channel.latencies) <= 2.0


def test_vtest_lawn_through_the_cli(detector_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.json"
    code = main(
        ["accuracy", str(VTEST), str(LABELS / "vtest.yaml"), "--model", str(detector_model), "--json", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "lawn" in printed and "precision" in printed
    report = json.loads(out.read_text())
    assert report["codec"] == "msmpeg4" and report["decode_errors"] == 0
    (lawn,) = report["channels"]
    assert lawn["recall"] == 1.0  # the people on the lawn are found
    assert lawn["precision"] >= 0.6, report  # 1.0 here; room for other onnxruntime builds
    assert max(lawn["latencies"]) <= 1.5  # zone entry to alarm
    assert report["detector_passes"] > 0


def test_bad_labels_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "camera: {zones: [{id: z, polygon: [[0, 0], [1, 0], [1, 1]]}]}\n"
        "labels: [{channel: nope, intervals: [[1, 2]]}]\n"
    )
    assert main(["accuracy", str(VTEST), str(bad)]) == 1
    assert "nope" in capsys.readouterr().err
    with pytest.raises(ValueError, match="start <= end"):
        load_labels(_write(tmp_path / "b.yaml", "labels: [{channel: z, intervals: [[5, 2]]}]"))
    # A person filter without a detector model says how to install one.
    person = tmp_path / "p.yaml"
    person.write_text(
        "camera: {zones: [{id: z, polygon: [[0, 0], [1, 0], [1, 1]], objects: person}]}\n"
        "labels: [{channel: z, intervals: [[1, 2]]}]\n"
    )
    assert main(["accuracy", str(VTEST), str(person), "--model", str(tmp_path / "none.onnx")]) == 1
    assert "sharpeye models install" in capsys.readouterr().err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
