"""Several hub nodes on one machine: MQTT throughput of one node against two, and takeover time after kill -9.

    python bench/cluster.py [--devices 100] [--per-device 150] [--kills 10]

Everything is real: hub nodes are `python -m sharpeye.node run` processes sharing a private Redis and Mosquitto.

(a) throughput. A site of N fence hosts (3 zones each) with shared subscriptions (SHARPEYE_MQTT_SHARE_GROUP), so
    that every node reads. The nodes are started, every zone's alarm is raised once (warm-up: the governance
    intake opens its incident cases now, not during the measure), and the nodes are paused (SIGSTOP on their
    process groups: hub, MQTT receiver, video worker; their leases outlive the pause); the whole load (repeats of
    the open alarms, the bulk of a real sensor load) is published and queued by the broker meanwhile; the nodes
    are woken and the time until every message is applied (the alarm script's live channel, one message per
    signal; then each hub's `sharpeye_messages_total` once, for the exact count) is the figure. So the publisher
    never competes with the hubs, and the hubs are asked nothing while they drain. The baseline is one node
    pinned to CPU 0 (taskset); then two nodes, pinned to CPU 0 and CPU 1. Redis and Mosquitto are not pinned
    (they share both CPUs with the nodes: on a 2-core machine the second node does not get a whole core of its
    own, which the ratio shows). The figure that holds on a shared machine is the nodes' CPU time per message.
    With --node-quota CORES each node's process tree gets a cgroup CPU quota of CORES of one core instead of a
    pinned core (root; cgroup v1): one node against two, each with the same share, while Redis and Mosquitto keep
    the rest of the machine.
    With --profile, the CPU time each process spent during the drain is read from /proc (hub, its MQTT receiver
    and workers, Redis, Mosquitto: CPU ms per 1,000 messages and the share of a core), with the batches each
    node handled and Redis's commandstats per 1,000 messages (round trips and script runs); with --py-spy DIR
    the hub and its receiver are also sampled by py-spy (collapsed stacks in DIR, for flamegraph.pl or
    speedscope).
(c) video. N synthetic cameras (the demo's scenes rendered and encoded in the node, analysed at 10 fps with a
    zone each): frames analysed per second over all cameras, one node pinned to CPU 0 against two nodes pinned to
    CPU 0 and CPU 1 sharing the cameras by their leases (median of one sample a second).
(b) takeover. Two nodes with the default one-reader MQTT and nine cameras; kill -9 the node holding the MQTT
    reader role, time until the survivor holds every unit (polling GET /api/cluster every 50 ms), restart the
    killed node, wait for a fair split, repeat. Baseline: the lease TTL (5 s) in the same run, as a ratio.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import orjson
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from sharpeye.config.loader import demo_path

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-cluster-pw"
CAMERAS = [f"cam-{i}" for i in range(9)]


def site_yaml(work: Path, devices: int, cameras: bool, synthetic: int = 0) -> Path:
    site = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    site["site"]["id"] = f"b{uuid.uuid4().hex[:8]}"
    kept = [d for d in site["devices"] if d["kind"] not in ("camera", "fence")]
    for i in range(devices):
        kept.append({"id": f"fence-{i}", "kind": "fence", "name": f"围界{i}", "grid": "shanxia-g1",
                     "zones": [{"id": f"z{z}", "name": f"防区{z}"} for z in range(1, 4)]})  # fmt: skip
    if cameras:
        for cam in CAMERAS:
            kept.append({"id": cam, "kind": "camera", "name": cam, "grid": "shanxia-g1",
                         "url": f"rtsp://127.0.0.1:9/{cam}"})  # fmt: skip
    zone = {"id": "z", "name": "区域", "polygon": [[0.05, 0.5], [0.95, 0.5], [0.95, 0.98], [0.05, 0.98]]}
    for i in range(synthetic):  # the demo's rendered scenes, analysed at 10 fps
        scene = ("reservoir", "school-gate", "hillside")[i % 3]
        kept.append({"id": f"vcam-{i}", "kind": "camera", "name": f"vcam-{i}", "grid": "shanxia-g1",
                     "url": f"synthetic:{scene}", "analysis_fps": 10, "zones": [zone]})  # fmt: skip
    site["devices"] = kept
    site["rules"] = [r for r in site["rules"] if not str(r["match"].get("kind", "")).startswith("video.")]
    path = work / f"site-{site['site']['id']}.yaml"
    path.write_text(yaml.safe_dump(site, allow_unicode=True), encoding="utf-8")
    return path


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller (root): --node-quota
QUOTA: float | None = None  # set by --node-quota: each node's share of a core (CFS quota), instead of pinning


def quota_group(node_id: str, share: float) -> Path:
    """A cgroup (v1 cpu controller) that lets its processes use ``share`` of one core (CFS quota per 100 ms)."""
    path = CGROUP_CPU / f"sharpeye-bench-{node_id}"
    path.mkdir(exist_ok=True)
    (path / "cpu.cfs_period_us").write_text("100000")
    (path / "cpu.cfs_quota_us").write_text(str(int(share * 100_000)))
    return path


class Node:
    def __init__(self, work: Path, node_id: str, site: Path, redis_url: str, mqtt_url: str, prefix: str,
                 cpu: int | None = None, share: str | None = None, **extra: str) -> None:  # fmt: skip
        data = work / node_id
        data.mkdir(parents=True, exist_ok=True)
        self.id = node_id
        self.log = data / f"hub-{time.time_ns()}.log"
        env = {**os.environ, "SHARPEYE_REDIS_URL": redis_url, "SHARPEYE_MQTT_URL": mqtt_url,
               "SHARPEYE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'cases.db'}", "SHARPEYE_REDIS_PREFIX": prefix,
               "SHARPEYE_ADMIN_PASSWORD": PASSWORD, "SHARPEYE_NODE_ID": node_id, "SHARPEYE_LOG_LEVEL": "WARNING",
               "SHARPEYE_CAMERA_WORKERS": "1"}  # fmt: skip
        if share:
            env["SHARPEYE_MQTT_SHARE_GROUP"] = share
        env.update(extra)
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        self.cgroup: Path | None = None
        if QUOTA is not None and cpu is not None:  # the node's whole process tree under its CPU quota, not pinned
            self.cgroup = quota_group(node_id, QUOTA)
            pin = ["sh", "-c", f'echo $$ > {self.cgroup / "cgroup.procs"} && exec "$@"', "quota"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*pin, sys.executable, "-m", "sharpeye.node", "run", "-c", str(site), "--port", "0", "--data-dir",
                 str(data)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.base = self._console()
        token = httpx.post(f"{self.base}/api/auth/token", data={"username": "admin", "password": PASSWORD}).json()
        self.auth = {"Authorization": f"Bearer {token['access_token']}"}

    def _console(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(r"console: (http://[\d.]+:\d+)/", self.log.read_text(errors="replace"))
            if found and self.proc.poll() is None:
                return found.group(1)
            time.sleep(0.1)
        raise SystemExit(f"node {self.id} did not start; see {self.log}")

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.base}{path}", headers=self.auth, timeout=10).json()

    def messages(self, prefix: str = "sharpeye_messages_total{") -> float:
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(10)
        if self.cgroup is not None:
            for _ in range(50):  # the group empties when the last of the node's processes has gone
                try:
                    self.cgroup.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc/<pid>/stat; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def group(pgid: int) -> list[int]:
    """The processes of a process group (a node: its hub, MQTT receiver and workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                out.append(int(entry.name))
    return sorted(out)


def redis_client(redis: EmbeddedRedis) -> Any:
    import redis as redis_py

    return redis_py.Redis.from_url(redis.url)


class Applied:
    """Counts alarm changes as the hubs apply them, from the alarm script's live channel (one message per signal,
    repeats included: here one per MQTT message). The drain's end is seen without asking the hubs anything: polling
    every node's /metrics every 50 ms, as this bench did, cost each hub about 60 ms of CPU per second (3 ms a
    scrape), paid per node and per second of the drain, which made two slower nodes look dearer per message."""

    def __init__(self, client: Any, channel: str) -> None:
        self.client = client  # kept: its pool, and the subscription's connection, close when it is collected
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(channel)
        self.pubsub.get_message(timeout=1.0)  # the subscription confirmed before the nodes wake

    def wait_for(self, count: int, deadline: float) -> int:
        seen = 0
        while seen < count and time.monotonic() < deadline:
            if self.pubsub.get_message(timeout=1.0) is not None:
                seen += 1
        self.pubsub.close()
        return seen


def settle(pids: list[int], quiet: float = 0.05, limit: float = 30.0) -> None:
    """Wait until ``pids`` together use less than ``quiet`` of a core over half a second (the warm-up's work done)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(cpu_s(p) for p in pids)
        time.sleep(0.5)
        if sum(cpu_s(p) for p in pids) - before < quiet * 0.5:
            return
    print(f"    (the nodes were still busy {limit:.0f} s after the warm-up)")


def publish_all(port: int, devices: int, per_device: int, first_seq: int = 1) -> int:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for seq in range(first_seq, first_seq + per_device):
        for i in range(devices):
            body = {"seq": seq, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion",
                    "zone": f"z{seq % 3 + 1}"}  # fmt: skip
            infos.append(client.publish(f"sharpeye/fence/fence-{i}/event", orjson.dumps(body), qos=1))
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()
    return len(infos)


def throughput(work: Path, redis: EmbeddedRedis, broker: EmbeddedMosquitto, cpus: list[int], devices: int,
               per_device: int, profile: bool = False,
               spy: Path | None = None) -> tuple[float, float, float]:  # fmt: skip
    """Messages per second drained by ``len(cpus)`` nodes, each pinned to its CPU, the busiest node's CPU seconds
    (hub, receiver, workers) per message, and all nodes' together; with ``profile``, the CPU time of every process
    is printed."""
    site = site_yaml(work, devices, cameras=False)
    prefix = f"b{uuid.uuid4().hex[:6]}"
    share = f"g{uuid.uuid4().hex[:6]}"
    # leases outlive the pause (the publishing): no node finds the other dead on waking and sweeps up after it
    nodes = [Node(work, f"n{i}-{prefix}", site, redis.url, broker.url, prefix, cpu, share,
                  SHARPEYE_LEASE_TTL_S="60", SHARPEYE_LEASE_PERIOD_S="1") for i, cpu in enumerate(cpus)]  # fmt: skip
    try:
        for node in nodes:
            while node.get("/api/health")["components"]["mqtt"]["status"] != "ok":
                time.sleep(0.1)
        time.sleep(1.0)  # the receivers' SUBACKs (the bench has no probe for them)
        # warm-up: every zone's alarm raised (and its incident case opened by the governance intake) before the
        # measured backlog, which is then MQTT ingest only: repeats of open alarms, the bulk of a real sensor load
        warm = Applied(redis_client(redis), f"{prefix}:alarm-live")
        raised = publish_all(broker.port, devices, 3)
        if warm.wait_for(raised, time.monotonic() + 60) < raised:
            raise SystemExit("the warm-up messages were not applied")
        settle([p for node in nodes for p in group(node.proc.pid)])
        batches_before = [n.messages("sharpeye_ingest_batch_seconds_count") for n in nodes]
        for node in nodes:
            node.signal(signal.SIGSTOP)
        paused = time.monotonic()
        sent = publish_all(broker.port, devices, per_device, first_seq=4)
        if profile:
            print(f"    {sent} messages published and queued in {time.monotonic() - paused:.1f} s (nodes paused)")
        assert redis.proc is not None and broker.proc is not None
        roles: dict[str, list[int]] = {"redis": [redis.proc.pid], "mosquitto": [broker.proc.pid]}
        for node in nodes:
            pids = group(node.proc.pid)
            roles[f"{node.id[:2]} hub"] = [node.proc.pid]
            roles[f"{node.id[:2]} receiver+workers"] = [p for p in pids if p != node.proc.pid]
        spies = []
        if spy is not None:
            spy.mkdir(parents=True, exist_ok=True)
            for node in nodes:
                for pid in group(node.proc.pid):
                    out = spy / f"{len(cpus)}node-{node.id[:2]}-{pid}.txt"
                    cmd = ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--idle",
                           "-f", "raw", "-o", str(out)]  # fmt: skip
                    spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1.0)  # attached before the drain starts
        before = {role: sum(cpu_s(p) for p in pids) for role, pids in roles.items()}
        applied = Applied(redis_client(redis), f"{prefix}:alarm-live")
        stats = redis_client(redis)
        stats.config_resetstat()  # commandstats from here: Redis calls (round trips, script runs) per message
        began = time.perf_counter()
        for node in nodes:
            node.signal(signal.SIGCONT)
        got = applied.wait_for(sent, time.monotonic() + 300)
        spent = time.perf_counter() - began
        used = {role: sum(cpu_s(p) for p in pids) - before[role] for role, pids in roles.items()}
        if got < sent:
            raise SystemExit(f"only {got} of {sent} messages applied")
        counted = sum(n.messages() for n in nodes) - raised  # one scrape each, after the drain
        if counted < sent:
            raise SystemExit(f"the hubs counted {counted:.0f} messages, {sent} were sent")
        if counted > sent:
            print(f"    (the hubs counted {counted - sent:.0f} messages more than were sent: redeliveries)")
        commands = stats.info("commandstats")
        batches = [n.messages("sharpeye_ingest_batch_seconds_count") - b for n, b in zip(nodes, batches_before,
                   strict=True)]  # fmt: skip
        for proc in spies:
            proc.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
            proc.wait(30)
        if profile:
            print(f"    CPU in the {spent:.2f} s drain of {sent} messages (ms per 1,000 messages; share of a core):")
            for role, cpu in [*used.items(), ("total", sum(used.values()))]:
                print(f"      {role:24s} {1e6 * cpu / sent:7.1f} ms/1k  {cpu / spent:5.2f}")
            print(
                f"    batches handled per node: {', '.join(f'{b:.0f}' for b in batches)} "
                f"(mean {sent / max(1.0, sum(batches)):.0f} messages a batch)"
            )
            print("    Redis commands per 1,000 messages (calls, server CPU ms):")
            top = sorted(commands.items(), key=lambda kv: -kv[1]["usec"])[:8]
            for name, row in top:
                print(
                    f"      {name.removeprefix('cmdstat_'):24s} {1000 * row['calls'] / sent:8.1f} "
                    f"{row['usec'] / sent:7.1f} ms"
                )
        rejected = sum(n.messages("sharpeye_deadletters_total{") for n in nodes)
        if rejected:
            raise SystemExit(f"{rejected:.0f} messages rejected: the load is wrong")
        per_node = [sum(cpu for role, cpu in used.items() if role.startswith(node.id[:2])) for node in nodes]
        return sent / spent, max(per_node) / sent, sum(per_node) / sent
    finally:
        for node in nodes:
            node.stop()


def scrape_cost(work: Path, redis: EmbeddedRedis, broker: EmbeddedMosquitto, devices: int,
                seconds: float = 5.0) -> tuple[float, float]:  # fmt: skip
    """A quiet node's hub CPU (ms per second) left alone, and with its /metrics scraped every 50 ms (as this bench
    once watched the drain): the cost a scrape adds per node and per second, whatever the messages."""
    site = site_yaml(work, devices, cameras=False)
    prefix = f"s{uuid.uuid4().hex[:6]}"
    node = Node(work, f"s0-{prefix}", site, redis.url, broker.url, prefix, 0, f"g{prefix}")
    try:
        while node.get("/api/health")["components"]["mqtt"]["status"] != "ok":
            time.sleep(0.1)
        settle([node.proc.pid])
        alone: list[float] = []
        scraped: list[float] = []
        for _ in range(2):
            for into, poll in ((alone, False), (scraped, True)):
                before, began = cpu_s(node.proc.pid), time.perf_counter()
                while time.perf_counter() - began < seconds:
                    if poll:
                        node.messages()
                    time.sleep(0.05)
                into.append(1000 * (cpu_s(node.proc.pid) - before) / (time.perf_counter() - began))
        return statistics.median(alone), statistics.median(scraped)
    finally:
        node.stop()


def video(work: Path, redis: EmbeddedRedis, broker: EmbeddedMosquitto, cpus: list[int], cameras: int,
          seconds: float) -> float:  # fmt: skip
    """Frames analysed per second over all cameras, summed over ``len(cpus)`` nodes, each pinned to its CPU (its
    capture threads and its analytics worker inherit the pinning)."""
    site = site_yaml(work, 0, cameras=False, synthetic=cameras)
    prefix = f"v{uuid.uuid4().hex[:6]}"
    nodes = [Node(work, f"v{i}-{prefix}", site, redis.url, broker.url, prefix, cpu) for i, cpu in enumerate(cpus)]
    try:

        def analysed() -> tuple[int, float]:
            rows = [c for n in nodes for c in n.get("/api/cameras") if c.get("state") not in (None, "not_captured")]
            return len(rows), sum(float(c.get("fps_analysed", 0)) for c in rows)

        deadline = time.monotonic() + 60
        while analysed()[0] < cameras:  # every camera opened by exactly one node
            if time.monotonic() > deadline:
                raise SystemExit(f"only {analysed()[0]} of {cameras} cameras captured")
            time.sleep(0.5)
        time.sleep(8)  # warm-up: workers, background models, the rate windows (5 s)
        samples = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples.append(analysed()[1])
            time.sleep(1)
        return statistics.median(samples)
    finally:
        for node in nodes:
            node.stop()


def takeover(work: Path, redis: EmbeddedRedis, broker: EmbeddedMosquitto, kills: int) -> list[float]:
    site = site_yaml(work, 4, cameras=True)
    prefix = f"t{uuid.uuid4().hex[:6]}"
    units = {"role:mqtt-reader", *CAMERAS}
    nodes = {n: Node(work, n, site, redis.url, broker.url, prefix) for n in ("a", "b")}
    times: list[float] = []

    def view(node: Node) -> dict[str, set[str]]:
        return {n["id"]: set(n["devices"]) for n in node.get("/api/cluster")["nodes"]}

    def wait(check: Any, limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        while not check():
            if time.monotonic() > deadline:
                raise SystemExit("timed out")
            time.sleep(0.05)

    try:
        for _ in range(kills):
            wait(lambda: {u for s in view(nodes["a"]).values() for u in s} == units and len(view(nodes["a"])) == 2)
            owners = view(nodes["a"])
            victim = next(n for n, s in owners.items() if "role:mqtt-reader" in s)
            survivor = nodes["b" if victim == "a" else "a"]
            nodes[victim].signal(signal.SIGKILL)
            nodes[victim].proc.wait(10)
            killed = time.monotonic()
            wait(lambda alive=survivor: view(alive).get(alive.id) == units)  # type: ignore[misc]
            times.append(time.monotonic() - killed)
            print(f"  kill {len(times)}: {times[-1]:.2f} s", flush=True)
            nodes[victim] = Node(work, victim, site, redis.url, broker.url, prefix)
    finally:
        for node in nodes.values():
            node.stop()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100, help="fence hosts (MQTT devices) in the throughput site")
    ap.add_argument("--per-device", type=int, default=150, help="messages per device (below the rate-limit burst)")
    ap.add_argument("--kills", type=int, default=10, help="kill -9 rounds for the takeover figure (0: skip)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--profile", action="store_true", help="CPU time of every process during the drain")
    ap.add_argument("--py-spy", type=Path, default=None, help="sample the nodes with py-spy (collapsed stacks here)")
    ap.add_argument("--only-one", action="store_true", help="(a) with one node only (profiling)")
    ap.add_argument(
        "--scrape-cost", action="store_true", help="(a) also: a quiet hub's CPU with /metrics scraped at 20 Hz"
    )
    ap.add_argument("--node-quota", type=float, default=None, metavar="CORES",
                    help="(a) give each node this share of a core (a cgroup CPU quota, needs root) instead of pinning "
                    "it to a core of its own: on a small machine, Redis and the broker then keep the rest")  # fmt: skip
    ap.add_argument("--cameras", type=int, default=8, help="synthetic analysed cameras for (c) (0: skip)")
    ap.add_argument("--seconds", type=float, default=15, help="sampling time of (c)")
    args = ap.parse_args()
    global QUOTA
    QUOTA = args.node_quota
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        redis = EmbeddedRedis(workdir=work / "redis")
        broker = EmbeddedMosquitto(workdir=work / "mqtt")
        redis.start()
        broker.start()
        try:
            if args.scrape_cost:
                alone, scraped = scrape_cost(work, redis, broker, args.devices)
                print(f"(a') a quiet hub on CPU 0: {alone:.1f} ms of CPU a second alone (baseline), {scraped:.1f} "
                      f"with its /metrics scraped every 50 ms ({(scraped - alone) / 20:.1f} ms a scrape)")  # fmt: skip
            if not args.skip_throughput:
                n = args.devices * args.per_device
                print(f"(a) throughput, {n} messages queued while the nodes were paused, drained after waking")
                one, cost_one, all_one = throughput(work, redis, broker, [0], args.devices, args.per_device,
                                                    args.profile, args.py_spy)  # fmt: skip
                where = f"{QUOTA:.2f} core" if QUOTA is not None else "CPU 0"
                print(f"  one node on {where} (baseline):   {one:8.0f} msg/s   node CPU {1e6 * all_one:5.1f} ms/1k")
                if not args.only_one:
                    two, cost_two, all_two = throughput(work, redis, broker, [0, 1], args.devices, args.per_device,
                                                        args.profile, args.py_spy)  # fmt: skip
                    print(
                        f"  two nodes on {where + ' each' if QUOTA is not None else 'CPU 0 and CPU 1'}:   {two:8.0f} "
                        f"msg/s   node CPU {1e6 * all_two:5.1f} ms/1k "
                        f"(both)   ratio {two / one:.2f}x, CPU per message {all_two / all_one:.2f}x"
                    )
                    # CPU time is what a node would spend with a core of its own (Redis and the broker elsewhere):
                    # the drain rate is then bounded by the busiest node's CPU seconds per message of the total
                    print(
                        f"  with a core per node (from CPU time per message): one {1 / cost_one:8.0f} msg/s, "
                        f"two {1 / cost_two:8.0f} msg/s   ratio {cost_one / cost_two:.2f}x"
                    )
            if args.cameras:
                print(f"(c) video: {args.cameras} synthetic cameras analysed at 10 fps, frames analysed per second")
                one = video(work, redis, broker, [0], args.cameras, args.seconds)
                print(f"  one node on CPU 0 (baseline):   {one:8.1f} fps")
                two = video(work, redis, broker, [0, 1], args.cameras, args.seconds)
                print(f"  two nodes on CPU 0 and CPU 1:   {two:8.1f} fps   ratio {two / one:.2f}x")
            if args.kills:
                print(f"(b) takeover after kill -9 of the MQTT reader, {args.kills} rounds (lease TTL 5 s)")
                times = takeover(work, redis, broker, args.kills)
                p90 = sorted(times)[max(0, math.ceil(0.9 * len(times)) - 1)]  # nearest rank
                print(
                    f"  takeover s: min {min(times):.2f}  median {statistics.median(times):.2f}  "
                    f"p90 {p90:.2f}  max {max(times):.2f}   (median / TTL {statistics.median(times) / 5:.2f})"
                )
        finally:
            broker.stop()
            redis.stop()


if __name__ == "__main__":
    main()
