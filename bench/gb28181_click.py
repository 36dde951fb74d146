"""Browser click to first frame: a GB/T 28181 channel against an RTSP camera, in the console, in the same run.

    python bench/gb28181_click.py [--clicks 10]

A real hub (the demo site, private Redis and Mosquitto, uvicorn in a thread) with a GB/T 28181 NVR of the device
simulator (an H.264 and an H.265 channel, 320x180, PS over RTP/UDP, pulled on demand by INVITE) and an RTSP camera
of the GStreamer RTSP simulator (H.264 320x180, opened on demand by the live view). Headless Debian Chromium
(Playwright) signs in to the console, opens the map, and clicks the device's mark: the console opens its player
(WebRTC/WHEP) and the time from the click to the video element's first presented frame (requestVideoFrameCallback,
``data-first-frame-ms`` of the console's player) is taken. Each click is cold: the player is closed and the next
click waits until the GB channel was released (BYE after the 1 s grace period) and the live view's RTSP feed
stopped (idle 1 s). Kinds alternate click by click; p50/p95 per kind are printed with the RTSP camera as the
baseline (ratio GB / RTSP).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["SHARPEYE_LIVE_IDLE_STOP_S"] = "1"  # read when the hub's live view starts

from playwright.sync_api import expect, sync_playwright  # noqa: E402
from sharpeye.config.gb28181 import GbSettings  # noqa: E402
from sharpeye.config.loader import demo_path, load_file  # noqa: E402
from sharpeye.ingest.camera.config import CameraConfig  # noqa: E402
from sharpeye.ingest.gb28181.config import GbDeviceConfig  # noqa: E402
from sharpeye.ingest.registry import installed  # noqa: E402
from sharpeye.simulators.camera.rtsp import RtspSimulator  # noqa: E402
from sharpeye.simulators.camera.scenario import builtin  # noqa: E402
from sharpeye.simulators.camera.writer import write_video  # noqa: E402

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis  # noqa: E402
from tests.api.live.test_gb28181_browser import H264, H265, NVR, PLATFORM_ID, FleetThread  # noqa: E402
from tests.conftest import hub_settings  # noqa: E402
from tests.console.conftest import ADMIN_PASSWORD, CHROMIUM, CHROMIUM_ARGS, HubServer  # noqa: E402

RTSP_CAM = "bench-rtsp-cam"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=10, help="clicks per kind")
    args = parser.parse_args()
    os.environ.setdefault("BENCH_NVR_PW", NVR.password)
    with tempfile.TemporaryDirectory(prefix="sharpeye-click-") as tmp_dir:
        tmp = Path(tmp_dir)
        clip = write_video(builtin("intrusion"), tmp / "cam.ts", width=320, height=180, fps=10, duration_s=180,
                           gop_s=1.0)  # fmt: skip
        redis = EmbeddedRedis(workdir=tmp / "redis")
        broker = EmbeddedMosquitto(workdir=tmp / "mqtt")
        redis.start()
        broker.start()
        sim = RtspSimulator({"cam": clip})
        sim.start()
        try:
            site = load_file(demo_path(), installed())
            grid = site.devices[0].grid
            nvr = GbDeviceConfig.model_validate(
                {"id": NVR.id, "kind": "gb28181", "name": "模拟录像机", "grid": grid, "password": "${BENCH_NVR_PW}",
                 "position": {"x": 0.93, "y": 0.93}}
            )  # fmt: skip
            rtsp = CameraConfig.model_validate(
                {"id": RTSP_CAM, "kind": "camera", "name": "RTSP 对照", "grid": grid, "url": sim.url("cam"),
                 "position": {"x": 0.07, "y": 0.93}}
            )  # fmt: skip
            gb = GbSettings(sip_id=PLATFORM_ID, port=0, media_port_min=0, media_port_max=0, release_grace_s=1)
            results: dict[str, list[float]] = {}
            # 1: cameras=False, every feed opened on demand by the live view (RTSP cold, like the GB pull)
            # 2: the hub captures its RTSP camera (as in production, for analytics): the live view joins the capture
            for phase, captured in ((1, False), (2, True)):
                devices = [d for d in site.devices if not captured or d.kind != "camera"]  # no demo cameras to analyse
                phase_site = site.model_copy(update={"gb28181": gb, "devices": [*devices, nvr, rtsp]})
                settings = hub_settings(tmp / f"hub{phase}", redis.url, broker.url, admin_password=ADMIN_PASSWORD,
                                        cameras=captured)  # fmt: skip
                with HubServer(settings, phase_site) as server:
                    hub: Any = server.hubs[0]
                    deadline = time.monotonic() + 30
                    while not hub.gb_platform_port:  # SIP signalling is a role the node takes after it is up
                        if time.monotonic() > deadline:
                            raise SystemExit("the hub's GB/T 28181 platform did not start")
                        time.sleep(0.05)
                    with FleetThread(hub.gb_platform_port):
                        while hub.inventory.get(H265) is None:
                            if time.monotonic() > deadline:
                                raise SystemExit("the NVR's channels did not reach the inventory")
                            time.sleep(0.1)
                        kinds = {"GB/T 28181 H.264": H264, "GB/T 28181 H.265": H265,
                                 "RTSP H.264 on demand": RTSP_CAM} if phase == 1 else {
                                 "GB/T 28181 H.264 (2)": H264, "RTSP H.264 captured": RTSP_CAM}  # fmt: skip
                        results |= run(server, hub, args.clicks, kinds)
            report(results, args.clicks)
        finally:
            sim.stop()
            broker.stop()
            redis.stop()


def run(server: HubServer, hub: Any, clicks: int, kinds: dict[str, str]) -> dict[str, list[float]]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN").new_page()
        page.set_default_timeout(20_000)
        page.goto(server.url + "/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("form#login button")
        expect(page.locator("#nav")).to_be_visible()
        page.click("#nav button[data-view=map]")
        for device in kinds.values():
            expect(page.locator(f"#map-marks .mark[data-device='{device}']")).to_have_count(1)
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for i in range(clicks + 1):  # the first round warms Chromium and the encoders up; not counted
            for kind, device in kinds.items():
                mark = page.locator(f"#map-marks .mark[data-device='{device}']")
                mark.dispatch_event("click")  # the marks of a device's channels share its place on the plan
                video = page.locator(f"#map-device video[data-camera='{device}']")
                expect(video).to_have_attribute("data-first-frame-ms", re.compile(r"\d+"))
                ms = float(video.get_attribute("data-first-frame-ms") or "nan")
                if i:
                    times[kind].append(ms)
                page.evaluate("() => import('/static/player.js').then((m) => m.closeAllPlayers())")
                # cold next time: the GB channel released (grace 1 s), the RTSP feed stopped (idle 1 s)
                deadline = time.monotonic() + 15
                while hub.gb_puller.pulled and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(1.5)
            if i:
                print(f"round {i}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in times.items()), flush=True)
        browser.close()
    return times


def report(times: dict[str, list[float]], clicks: int) -> None:
    base = statistics.median(times["RTSP H.264 on demand"])
    print(f"\nclick to first frame in Chromium (console map, WebRTC), {clicks} cold clicks per kind, 320x180 10 fps:")
    for kind, values in times.items():
        p50 = statistics.median(values)
        print(f"  {kind:24s} p50 {p50:5.0f} ms  p95 {pct(values, 0.95):5.0f} ms  max {max(values):5.0f} ms"
              f"  ratio p50 to RTSP on demand {p50 / base:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
