"""The console's WGS-84 <-> GCJ-02 conversion (api/static/geo.js), run under Node against published reference
points (Shanghai, Shenzhen, Beijing, as other implementations of the same formula test them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

GEO = Path(__file__).resolve().parents[2] / "api" / "static" / "geo.js"

# WGS-84 lat, lon -> GCJ-02 lat, lon
REFERENCE = [
    ((31.1774276, 121.5272106), (31.17530398364597, 121.531541859215)),  # Shanghai
    ((22.543847, 113.912316), (22.540796131694766, 113.9171764808363)),  # Shenzhen
    ((39.911954, 116.377817), (39.91334545536069, 116.38404722455657)),  # Beijing
]


def run_geo(script: str) -> object:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing (Node.js 20+, scripts/test.sh needs it for the console checks)")
    code = f"import * as geo from {json.dumps(GEO.as_uri())};\n{script}"
    done = subprocess.run([node, "--input-type=module", "-e", code], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_wgs_to_gcj_matches_reference_points_and_round_trips() -> None:
    points = [list(w) for w, _ in REFERENCE]
    out = run_geo(
        f"const pts = {json.dumps(points)};\n"
        "console.log(JSON.stringify(pts.map(([a, b]) => { const g = geo.wgsToGcj(a, b); "
        "return [g, geo.gcjToWgs(g[0], g[1])]; })));"
    )
    assert isinstance(out, list)
    for (wgs, gcj), (got, back) in zip(REFERENCE, out, strict=True):
        # 1e-6 degree is about 0.1 m; the offsets themselves are hundreds of metres
        assert got[0] == pytest.approx(gcj[0], abs=1e-6) and got[1] == pytest.approx(gcj[1], abs=1e-6), (wgs, got)
        assert abs(got[0] - wgs[0]) + abs(got[1] - wgs[1]) > 1e-3  # really shifted
        assert back[0] == pytest.approx(wgs[0], abs=1e-7) and back[1] == pytest.approx(wgs[1], abs=1e-7)


def test_outside_china_nothing_moves() -> None:
    out = run_geo("console.log(JSON.stringify([geo.wgsToGcj(48.8584, 2.2945), geo.gcjToWgs(-33.8568, 151.2153)]))")
    assert out == [[48.8584, 2.2945], [-33.8568, 151.2153]]
