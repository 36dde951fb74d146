"""The console map with thousands of points: clustered markers against plain markers, in Chromium, same run.

    python bench/map_markers.py [--points 1000 5000 20000] [--assets ~/.cache/sharpeye-tests]

Leaflet and its plugins from a data dir's assets (``sharpeye assets install --data-dir DIR``), a 1400x800 map at
zoom 14 over a 10 km square, no tiles. For each N, random points are added (a) to a marker cluster group as the
console's map does (``L.markerClusterGroup``, divIcon markers like geomap.js) and, as the baseline, (b) straight to
the map as plain divIcon markers. Printed: time to add them and draw (until the next animation frame), the marker
elements in the page after, and the time of one zoom in + zoom out (until ``zoomend`` and a frame).
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright
from sharpeye.api import assets

PAGE = """<!doctype html><meta charset="utf-8">
<link rel="stylesheet" href="/assets/leaflet/dist/leaflet.css">
<link rel="stylesheet" href="/assets/leaflet.markercluster/dist/MarkerCluster.css">
<link rel="stylesheet" href="/assets/leaflet.markercluster/dist/MarkerCluster.Default.css">
<style>#m { width: 1400px; height: 800px; } .geo-mark { background: #7c3aed; border: 2px solid #fff; }</style>
<div id="m"></div>
<script src="/assets/leaflet/dist/leaflet.js"></script>
<script src="/assets/leaflet.markercluster/dist/leaflet.markercluster.js"></script>
"""

RUN = """async ([n, clustered]) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const box = document.getElementById("m");
  if (window.map) { window.map.remove(); }
  const map = window.map = L.map(box, { maxZoom: 19 }).setView([30.25, 120.05], 14);
  let seed = 42;
  const rnd = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
  const markers = [];
  for (let i = 0; i < n; i++) {
    const el = document.createElement("span"); el.dataset.case = String(i);
    markers.push(L.marker([30.205 + rnd() * 0.09, 120.0 + rnd() * 0.104],
      { icon: L.divIcon({ className: "geo-mark", html: el, iconSize: [12, 12] }) }));
  }
  const t0 = performance.now();
  if (clustered) {
    const group = L.markerClusterGroup({ chunkedLoading: false, showCoverageOnHover: false, maxClusterRadius: 50 });
    group.addLayers(markers); group.addTo(map);
  } else {
    for (const m of markers) m.addTo(map);
  }
  await frame();
  const add = performance.now() - t0;
  const elements = box.querySelectorAll(".leaflet-marker-icon").length;
  const t1 = performance.now();
  for (const z of [15, 14]) {
    await new Promise((r) => { map.once("zoomend", r); map.setZoom(z, { animate: false }); });
    await frame();
  }
  return { add, elements, zoom: performance.now() - t1 };
}"""


def serve(root: Path) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--assets", default=os.environ.get("SHARPEYE_TEST_MODEL_DIR", "~/.cache/sharpeye-tests"))
    parser.add_argument("--baseline-max", type=int, default=20000, help="largest N for plain markers")
    args = parser.parse_args()
    data_dir = Path(args.assets).expanduser()
    assets.install(data_dir, names=["leaflet", "leaflet.markercluster"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(assets.assets_dir(data_dir), root / "assets")
        (root / "index.html").write_text(PAGE)
        server = serve(root)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            print(f"{'points':>7} {'mode':>9} {'add+draw ms':>12} {'elements':>9} {'zoom in+out ms':>15}")
            for n in args.points:
                for clustered in (True, False):
                    if not clustered and n > args.baseline_max:
                        continue
                    r = page.evaluate(RUN, [n, clustered])
                    mode = "clustered" if clustered else "plain"
                    print(f"{n:>7} {mode:>9} {r['add']:>12.0f} {r['elements']:>9} {r['zoom']:>15.0f}", flush=True)
            browser.close()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
