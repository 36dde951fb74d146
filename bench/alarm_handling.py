"""Alarm handling under load: the API calls of a monitoring room while alarms arrive for 研判.

    python bench/alarm_handling.py [--alarms-per-min 1000] [--operators 20] [--seconds 60] [--fences 60]
                                   [--shared-account]            # every operator as admin (the bench before 17:00)
                                   [--profile hub-profile.txt]   # the hub under pyinstrument (pip install pyinstrument)

A hub (`sharpeye run` as its own process, on a private Redis and Mosquitto) runs a site of fence controllers whose
intrusion rule asks for a verdict. Two phases, measured in the same run:

(a) baseline: the operators alone, no alarm traffic (the alarms of a warm-up stay in the list; 5 s of operator
    list calls are made first and not counted); the warm-up's alarms are judged at the pace of --alarms-per-min,
    as the load phase's arrive;
(b) load: fences raise and clear alarms at --alarms-per-min while the operators work.

Each of --operators operator threads, signed in with an operator account of its own (op01...), loops: list open
alarms (GET /api/alarms?open_only=true&limit=50), list the oldest 50 alarms waiting for a verdict
(GET /api/verifications?limit=50), and give a verdict (confirm 1 in 5, else false alarm) to the oldest waiting alarm
no other operator took. Prints p50/p95/p99 per call in both phases and
the ratio load/baseline, as the client saw them and as the hub measured them (its request-time histogram), with the
hub's CPU and the Redis server's commands per operator call (commands run inside scripts count: not round trips),
and what the hub's list cache did with the list calls (``sharpeye_api_list_cache_total``; nothing on a hub without).
Goal (issue 20): p99 of the alarm list and verdict calls <= 50 ms at 1,000 alarms/min with 20 operators.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis  # noqa: E402

PASSWORD = "Bench-Handling-1"


def site(fences: int) -> dict[str, object]:
    zones = [{"id": f"z{z}", "name": f"zone {z}"} for z in range(1, 5)]
    devices = [{"id": f"f{f}", "kind": "fence", "name": f"fence {f}", "grid": "g1", "heartbeat_s": 3600,
                "zones": zones} for f in range(fences)]  # fmt: skip
    rule = {"id": "fence-intrusion", "name": "围界入侵", "match": {"kind": "fence.intrusion"},
            "condition": {"type": "state", "active": ["alarm"], "clear": ["restore"]}, "severity": "major",
            "category": "perimeter_intrusion", "correlate": False,
            "flapping": {"transitions": 1000000, "window_s": 1},
            "verification": {"within_s": 3600, "supervisor_within_s": 3600}}  # fmt: skip
    return {"site": {"id": "bench", "name": "bench"}, "org": {"id": "g1", "name": "g1", "level": "grid"},
            "departments": [{"id": "d1", "name": "dept", "unit": "g1", "categories": ["perimeter_intrusion"]}],
            "devices": devices, "rules": [rule],
            "governance": {"intake": [{"category": "*"}],
                           "dispatch": [{"category": "*", "level": "grid"}]}}  # fmt: skip


def start_hub(
    config: Path, data: Path, redis_url: str, mqtt_url: str, profile: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "SHARPEYE_REDIS_URL": redis_url, "SHARPEYE_MQTT_URL": mqtt_url, "SHARPEYE_NODE_ID": "bench",
           "SHARPEYE_ADMIN_PASSWORD": PASSWORD, "SHARPEYE_LOG_LEVEL": "WARNING"}  # fmt: skip
    profiler = ["-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(profile)] if profile else []
    proc = subprocess.Popen([sys.executable, *profiler, "-m", "sharpeye.node", "run", "-c", str(config), "--port", "0",
                             "--data-dir", str(data)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := re.search(r"console: (http://[\d.]+:\d+)/", line):
            threading.Thread(target=relay, args=(proc.stdout,), daemon=True).start()
            return proc, m.group(1)
    raise RuntimeError("hub did not start")


def relay(lines: Iterable[str]) -> None:
    """The hub's log (warnings and errors only) to stderr, so a failed call's cause shows beside the figures."""
    for line in lines:
        sys.stderr.write(f"hub: {line}")


class Fences:
    """Raises and clears intrusion alarms at a steady rate: each zone alternates alarm and restore."""

    def __init__(self, port: int, fences: int, per_min: float) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.fences, self.interval = fences, 60.0 / per_min / 2  # two messages (alarm, restore) per alarm
        self.seq: dict[int, int] = defaultdict(int)
        self.stop = threading.Event()
        self.sent = 0

    def publish(self, f: int, z: int, event: str) -> None:
        self.seq[f] += 1
        body = {"seq": self.seq[f], "ts": datetime.now(UTC).isoformat(), "event": event, "cause": "intrusion",
                "zone": f"z{z}"}  # fmt: skip
        self.client.publish(f"sharpeye/fence/f{f}/event", orjson.dumps(body), qos=1)

    def run(self, seconds: float) -> None:
        slots = [(f, z) for f in range(self.fences) for z in range(1, 5)]
        start = time.monotonic()
        i = 0
        while not self.stop.is_set() and time.monotonic() - start < seconds:
            f, z = slots[(i // 2) % len(slots)]
            self.publish(f, z, "alarm" if i % 2 == 0 else "restore")
            self.sent += i % 2 == 0
            i += 1
            due = start + i * self.interval
            self.stop.wait(max(0.0, due - time.monotonic()))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Pacer:
    """Verdicts at most at the alarm rate across all operators (the baseline phase judges the warm-up's alarms at the
    pace the load phase's arrive, not all at once)."""

    def __init__(self, per_min: float) -> None:
        self.interval, self.next, self.lock = 60.0 / per_min, time.monotonic(), threading.Lock()

    def turn(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if now < self.next:
                return False
            self.next = max(self.next + self.interval, now - self.interval)
            return True


def accounts(base: str, admin_token: str, n: int) -> list[str]:
    """A bearer token for each of ``n`` operator accounts (``op01``...: role operator, the whole site in scope), as
    a monitoring room signs in: each operator's own (a cache of answers must not serve one's view to another)."""
    tokens = []
    admin = {"Authorization": f"Bearer {admin_token}"}
    for i in range(1, n + 1):
        name, first = f"op{i:02d}", f"{PASSWORD}-first"
        httpx.post(base + "/api/users", headers=admin, timeout=30,
                   json={"username": name, "password": first, "role": "operator"}).raise_for_status()  # fmt: skip
        token = httpx.post(base + "/api/auth/token", data={"username": name, "password": first}, timeout=30).json()[
            "access_token"
        ]
        httpx.post(base + "/api/auth/password", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                   json={"current_password": first, "new_password": PASSWORD}).raise_for_status()  # fmt: skip
        tokens.append(token)
    return tokens


def operator(base: str, token: str, taken: set[str], lock: threading.Lock, until: float,
             times: dict[str, list[float]], n: int, pace: Pacer | None, judge: bool) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        k = 0
        while time.monotonic() < until:
            t0 = time.perf_counter()
            http.get("/api/alarms", params={"open_only": "true", "limit": 50}).raise_for_status()
            times["GET /api/alarms"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            waiting = http.get("/api/verifications", params={"limit": 50}).json()
            times["GET /api/verifications"].append(time.perf_counter() - t0)
            choice = None
            with lock:
                for item in waiting if judge and (pace is None or pace.turn()) else []:
                    if item["alarm_id"] not in taken:
                        choice = item["alarm_id"]
                        taken.add(choice)
                        break
            if choice is None:
                time.sleep(0.2)
                continue
            k += 1
            body = {"verdict": "confirm"} if (k + n) % 5 == 0 else {"verdict": "false_alarm", "reason": "小动物"}
            t0 = time.perf_counter()
            res = http.post(f"/api/alarms/{choice}/verdict", json=body)
            times[f"POST verdict ({body['verdict']})"].append(time.perf_counter() - t0)
            if res.status_code >= 500:  # 503: Redis failed, the verdict recorded entirely or not at all (counted)
                times[f"verdict answered HTTP {res.status_code}"].append(time.perf_counter() - t0)
            elif res.status_code not in (200, 409):
                res.raise_for_status()


def phase(base: str, tokens: list[str], operators: int, seconds: float, pace: Pacer | None = None,
          judge: bool = True) -> dict[str, list[float]]:  # fmt: skip
    times: dict[str, list[float]] = defaultdict(list)
    taken: set[str] = set()
    lock = threading.Lock()
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=operator, args=(base, tokens[n % len(tokens)], taken, lock, until, times, n,
                                                       pace, judge)) for n in range(operators)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


ROUTES = {("GET", "/api/alarms"): "GET /api/alarms", ("GET", "/api/verifications"): "GET /api/verifications",
          ("POST", "/api/alarms/{alarm_id}/verdict"): "POST verdict (both)"}  # fmt: skip


def hub_histograms(base: str) -> dict[str, dict[float, float]]:
    """The hub's own request-time histogram (``sharpeye_http_request_seconds``, every status) per bench call: bucket
    bound -> requests at or under it. Measured inside the hub, so free of this client's own waits (20 Python threads
    sharing one interpreter lock)."""
    out: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(httpx.get(base + "/metrics").text):
        if family.name != "sharpeye_http_request_seconds":
            continue
        for sample in family.samples:
            name = ROUTES.get((sample.labels.get("method", ""), sample.labels.get("route", "")))
            if name and sample.name.endswith("_bucket"):
                out[name][float(sample.labels["le"])] += sample.value
    return out


Histograms = dict[str, dict[float, float]]


def list_cache(base: str) -> dict[tuple[str, str], float]:
    """The hub's list cache outcomes so far (``sharpeye_api_list_cache_total``: hit, shared, miss, bypass) per
    route; empty on a hub without the cache."""
    out: dict[tuple[str, str], float] = defaultdict(float)
    for family in text_string_to_metric_families(httpx.get(base + "/metrics").text):
        if family.name == "sharpeye_api_list_cache":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[(sample.labels["route"], sample.labels["outcome"])] += sample.value
    return out


def hub_side(before: Histograms, after: Histograms) -> dict[str, tuple[int, float, float]]:
    """Per call: requests in the phase, the share answered within 50 ms, and the bucket bound holding 99 % of them."""
    out = {}
    for name, buckets in after.items():
        delta = {le: n - before.get(name, {}).get(le, 0.0) for le, n in buckets.items()}
        total = delta.get(float("inf"), 0.0)
        if total <= 0:
            continue
        p99 = min(le for le, n in delta.items() if n >= 0.99 * total)
        out[name] = (int(total), delta.get(0.05, 0.0) / total, p99)
    return out


def hub_cpu(pid: int) -> float:
    """CPU seconds the hub and its worker processes have used (less sensitive to a loaded machine than latency)."""
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def redis_commands(url: str) -> int:
    """Commands the Redis server has run (all clients: the hub, its workers; the bench sends none)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def summary(times: dict[str, list[float]]) -> dict[str, tuple[int, float, float, float]]:
    out = {}
    for name, values in sorted(times.items()):
        ms = np.array(values) * 1000
        out[name] = (len(ms), *(float(np.percentile(ms, q)) for q in (50, 95, 99)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alarms-per-min", type=float, default=1000)
    parser.add_argument("--operators", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--fences", type=int, default=60)
    parser.add_argument("--shared-account", action="store_true",
                        help="all operators call as admin (as this bench did before 2026-12-07 17:00 UTC)")
    parser.add_argument("--profile", type=Path, default=None, help="write the hub's pyinstrument profile here")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # a machine shared with other jobs: said beside the figures
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        redis_server = EmbeddedRedis(workdir=tmp / "redis")
        broker = EmbeddedMosquitto(workdir=tmp / "broker")
        redis_server.start()
        broker.start()
        config = tmp / "site.yaml"
        config.write_text(yaml.safe_dump(site(args.fences), allow_unicode=True), encoding="utf-8")
        hub, base = start_hub(config, tmp / "data", redis_server.url, broker.url, args.profile)
        try:
            token = httpx.post(base + "/api/auth/token", data={"username": "admin", "password": PASSWORD}).json()[
                "access_token"
            ]
            tokens = [token] if args.shared_account else accounts(base, token, args.operators)
            fences = Fences(broker.port, args.fences, args.alarms_per_min)
            fences.run(10)  # warm-up: alarms in the list and waiting, as a shift finds them
            print(f"warm-up: {fences.sent} alarms raised", flush=True)
            phase(base, tokens, args.operators, 5, judge=False)  # warm-up of the API (lists only): not counted
            cpu0, hist0, cmd0 = hub_cpu(hub.pid), hub_histograms(base), redis_commands(redis_server.url)
            cache0 = list_cache(base)
            base_times = phase(base, tokens, args.operators, args.seconds / 2, Pacer(args.alarms_per_min))
            cpu1, hist1, cmd1 = hub_cpu(hub.pid), hub_histograms(base), redis_commands(redis_server.url)
            cache1 = list_cache(base)
            feeder = threading.Thread(target=fences.run, args=(args.seconds,), daemon=True)
            feeder.start()
            load_times = phase(base, tokens, args.operators, args.seconds)
            cpu2, hist2, cmd2 = hub_cpu(hub.pid), hub_histograms(base), redis_commands(redis_server.url)
            cache2 = list_cache(base)
            fences.stop.set()
            feeder.join()
            fences.close()
            stats = httpx.get(base + "/api/stats/false-alarms", params={"by": "reason"},
                              headers={"Authorization": f"Bearer {token}"}).json()  # fmt: skip
        finally:
            hub.send_signal(signal.SIGINT)  # a clean stop (and the profiler's report)
            try:
                hub.wait(60)
            except subprocess.TimeoutExpired:
                hub.kill()
                hub.wait(10)
            broker.stop()
            redis_server.stop()
    rate = fences.sent / (args.seconds + 10) * 60
    print(f"machine load average (1 min): {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end, "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"alarms raised: {fences.sent} in {args.seconds + 10:.0f} s ({rate:.0f}/min); judged false: {stats['total']}")
    base_s, load_s = summary(base_times), summary(load_times)
    base_calls = sum(len(v) for v in base_times.values())
    load_calls = sum(len(v) for v in load_times.values())
    print(f"hub CPU per operator call: baseline {(cpu1 - cpu0) / base_calls * 1000:.2f} ms ({base_calls} calls), "
          f"load {(cpu2 - cpu1) / load_calls * 1000:.2f} ms ({load_calls} calls; includes the alarm intake)")
    print(f"Redis commands per operator call: baseline {(cmd1 - cmd0) / base_calls:.2f}, "
          f"load {(cmd2 - cmd1) / load_calls:.2f} (includes the alarm intake's)")  # fmt: skip
    print(f"{'call':34} {'phase':9} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name in sorted(set(base_s) | set(load_s)):
        for label, table in (("baseline", base_s), ("load", load_s)):
            if name in table:
                n, p50, p95, p99 = table[name]
                print(f"{name:34} {label:9} {n:6d} {p50:8.1f} {p95:8.1f} {p99:8.1f}")
        if name in base_s and name in load_s:
            print(f"{name:34} {'ratio':9} {'':6} {load_s[name][1] / base_s[name][1]:8.2f} "
                  f"{load_s[name][2] / base_s[name][2]:8.2f} {load_s[name][3] / base_s[name][3]:8.2f}")  # fmt: skip

    for label, (before, after) in (("baseline", (cache0, cache1)), ("load", (cache1, cache2))):
        routes = sorted({route for route, _ in after})
        for route in routes:
            counts = {o: after[(route, o)] - before.get((route, o), 0.0) for r, o in after if r == route}
            total = sum(counts.values()) or 1.0
            said = ", ".join(f"{o} {n / total:.1%}" for o, n in sorted(counts.items()))
            print(f"list cache, {label}, GET {route}: {said} of {total:.0f}")
    print("hub-side (the hub's sharpeye_http_request_seconds; buckets 5, 10, 25, 50, 75, 100, 250 ms ...):")
    print(f"{'call':34} {'phase':9} {'n':>6} {'<=50 ms':>8} {'p99 <=':>8}")
    for label, side in (("baseline", hub_side(hist0, hist1)), ("load", hub_side(hist1, hist2))):
        for name, (n, share, p99) in sorted(side.items()):
            print(f"{name:34} {label:9} {n:6d} {share:8.1%} {p99 * 1000:6.0f}ms")


if __name__ == "__main__":
    main()
