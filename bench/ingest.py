"""bench/ingest: how fast signed events become durable, against what the broker can hand out.

    python -m bench.ingest [--events 30000] [--devices 200] [--workers 1 2] [--repeat 3]
                           [--rates 100 500 1000 2000 4000] [--seconds 15] [--json]

One private Mosquitto, one scratch PostgreSQL database, the publisher in its own process. Throughput
is measured as a drain, so that the publisher's speed (one paho thread on the same two cores) does
not cap what is measured: each consumer registers a persistent session and goes away, the publisher
loads N signed events into the broker, the consumer comes back and is timed from its first message to
its last (raw) or from its first commit to its last (ingest). For each worker count W:
  raw:     W bare paho subscriber processes (QoS 1, MQTT 5, shared subscription when W > 1) that
           only count messages: the ceiling a consumer of this broker can reach;
  ingest:  `motcua ingest --workers W`: verify, de-duplicate, time, attribute, commit, ack.
Raw and ingest drains alternate, --repeat times each, and medians are reported: this machine's speed
drifts by up to 2x over minutes, and alternating keeps that drift from favouring either side.
Then latency at each of several fixed offered rates: events published live to one ingest worker;
press-to-ack time (the ack leaves only after the commit, so this bounds press-to-commit from above),
in percentiles over every event sent (one never acked counts as slower than any). Baseline, at the
same rate in the same run, alternating with ingest: the same events through a bare paho echo on the
same broker (publish, one subscriber sends it straight back), the round trip with no work done.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

from bench.publisher import ECHO_PREFIX, RAW_PREFIX
from motcua.localbroker import Mosquitto, free_port
from server import registry, sessions
from server.db.engine import make_engine, upgrade
from server.db.models import EVENTS, DeviceKind
from server.db.scratch import reachable, scratch_database

PG_URL = os.environ.get("MOTCUA_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RECEIVE_MAXIMUM = 4000  # the window ingest asks for (settings.mqtt.receive_maximum)
SETTLE_S = 3.0  # for sessions to subscribe before they are sent away
DRAIN_WAIT_S = 120.0  # between offered rates: how long ingest may take to catch up before the next


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- load ------------------------------------------------------------------------------------


def setup_office(db_url: str, devices: int, workdir: Path) -> Path:
    """Devices at counters with officials signed in; returns the path of the devices' keys."""
    upgrade(db_url)
    engine = make_engine(db_url)
    keys = []
    start = datetime.now(UTC) - timedelta(hours=1)
    with engine.begin() as conn:
        unit = registry.create_unit(conn, code="BENCH", name="Bench office")
        for n in range(devices):
            cid = registry.create_counter(conn, unit_id=unit, code=f"B{n:04d}", name=f"Counter {n}")
            oid = registry.create_official(conn, unit_id=unit, code=f"O{n:04d}", full_name=f"Official {n}")
            sessions.sign_in(conn, counter_id=cid, official_id=oid, at=start, now=start, actor="bench")
            dev = registry.provision_device(conn, counter_id=cid, kind=DeviceKind.SIMULATED, actor="bench",
                                            device_id=f"bench-{n:04d}")
            keys.append({"id": dev.id, "secret_hex": dev.secret_hex})
    engine.dispose()
    path = workdir / "keys.json"
    path.write_text(json.dumps(keys))
    return path


def publish(port: int, keys: Path, n: int, epoch: int, workdir: Path, rate: float | None = None,
            raw: bool = False) -> dict[str, Any]:
    """Run bench.publisher in its own process and return what it measured."""
    out = workdir / f"pub-{epoch}.json"
    cmd = [sys.executable, "-m", "bench.publisher", "--port", str(port), "--keys", str(keys), "--n", str(n),
           "--epoch", str(epoch), "--out", str(out)]
    if rate:
        cmd += ["--rate", str(rate), "--acks", *(["--raw"] if raw else [])]
    subprocess.run(cmd, check=True)
    return dict(json.loads(out.read_text()))


# --- raw baseline ------------------------------------------------------------------------------


def purge_sessions(port: int, client_ids: list[str]) -> None:
    """Delete persistent sessions (a clean start with expiry 0), so no later phase feeds them."""
    for client_id in client_ids:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", port, clean_start=True)
        client.loop_start()
        time.sleep(0.2)
        client.loop_stop()
        client.disconnect()


def _raw_consumer(port: int, client_id: str, shared: bool, phase: Any, results: Any) -> None:
    """A paho subscriber process that only counts: registers, goes away, comes back, drains."""
    state = {"count": 0, "first": 0.0, "last": 0.0}
    ready = threading.Event()

    def on_message(*_: Any) -> None:
        now = time.time()
        if not state["count"]:
            state["first"] = now
        state["count"] += 1
        state["last"] = now

    def connect() -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.on_subscribe = lambda *_: ready.set()
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=False, properties=props)
        client.loop_start()
        client.subscribe(("$share/raw/" if shared else "") + "motcua/v1/dev/+/evt", qos=1)
        ready.wait(10)
        return client

    client = connect()
    client.loop_stop()
    client.disconnect()
    phase.wait()  # the burst is in the broker
    client = connect()
    while True:  # done when nothing arrives for a second
        seen = state["count"]
        time.sleep(1.0)
        if state["count"] == seen and seen > 0:
            break
    client.loop_stop()
    client.disconnect()
    results.put(state)


def raw_rate(port: int, keys: Path, workdir: Path, events: int, workers: int, epoch: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    phase, results = ctx.Event(), ctx.Queue()
    ids = [f"bench-raw-{epoch}-{i}" for i in range(workers)]
    procs = [ctx.Process(target=_raw_consumer, args=(port, cid, workers > 1, phase, results)) for cid in ids]
    for p in procs:
        p.start()
    time.sleep(SETTLE_S)
    publish(port, keys, events, epoch, workdir)
    phase.set()
    states = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(10)
    purge_sessions(port, ids)
    got = sum(s["count"] for s in states)
    if got != events:
        raise SystemExit(f"bench: raw subscribers got {got} of {events} events")
    return events / (max(s["last"] for s in states) - min(s["first"] for s in states if s["count"]))


def _raw_echo(port: int, ready: Any, done: Any) -> None:
    """A paho subscriber process that sends every baseline event straight back (QoS 0, as ingest's acks)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw-echo", protocol=mqtt.MQTTv5)

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        c.publish(ECHO_PREFIX + msg.topic[len(RAW_PREFIX):], msg.payload, qos=0)

    client.on_message = on_message
    client.on_subscribe = lambda *_: ready.set()
    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.loop_start()
    client.subscribe(f"{RAW_PREFIX}#", qos=1)
    done.wait()
    client.loop_stop()
    client.disconnect()


# --- ingest -------------------------------------------------------------------------------------


def ingest_process(db_url: str, broker: Mosquitto, workers: int, workdir: Path,
                   client_id: str, metrics_port: int | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MOTCUA_MODE": "demo", "MOTCUA_DATABASE_URL": db_url, "MOTCUA_MQTT__URL": broker.url,
           "MOTCUA_MQTT__CLIENT_ID": client_id}
    if workers > 1:
        env["MOTCUA_MQTT__SHARED_GROUP"] = "bench"
    with (workdir / "ingest.log").open("ab") as out:
        cmd = [sys.executable, "-m", "motcua", "ingest", "--workers", str(workers)]
        if metrics_port:
            cmd += ["--metrics-port", str(metrics_port)]
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def stored(engine: Any, epoch: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(EVENTS).where(EVENTS.c.epoch == epoch)).scalar_one())


def committed(ports: list[int]) -> int:
    """Messages committed so far, from the workers' own metrics (cheaper than asking the database)."""
    total = 0
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            continue
        total += sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                     if line.startswith("motcua_ingest_fates_total{"))
    return total


def ingest_rate(db_url: str, broker: Mosquitto, keys: Path, workdir: Path, events: int, workers: int,
                epoch: int) -> float:
    client_id = f"bench-ingest-{epoch}"
    proc = ingest_process(db_url, broker, workers, workdir, client_id)
    time.sleep(SETTLE_S + 2 * workers)  # processes start, connect and subscribe
    stop(proc)
    publish(broker.port, keys, events, epoch, workdir)
    port = free_port()
    ports = [port + i for i in range(workers)]
    proc = ingest_process(db_url, broker, workers, workdir, client_id, metrics_port=port)
    try:
        deadline = time.monotonic() + 600
        while committed(ports) == 0:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"bench: ingest did not start; see {workdir / 'ingest.log'}")
            time.sleep(0.01)
        first = time.time()
        while (n := committed(ports)) < events:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: ingest committed {n} of {events}; see {workdir / 'ingest.log'}")
            time.sleep(0.05)
        rate = events / (time.time() - first)
    finally:
        stop(proc)
        purge_sessions(broker.port, [client_id] if workers == 1 else [f"{client_id}-{i}" for i in range(workers)])
    engine = make_engine(db_url)
    n = stored(engine, epoch)
    engine.dispose()
    if n != events:
        raise SystemExit(f"bench: {n} of {events} events stored; see {workdir / 'ingest.log'}")
    return rate


def latency_curve(db_url: str, broker: Mosquitto, keys: Path, workdir: Path, rates: list[float], seconds: float,
                  epoch: int) -> list[dict[str, Any]]:
    """Press-to-ack through one ingest worker at each offered rate, each after the raw echo at that rate."""
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    echo = ctx.Process(target=_raw_echo, args=(broker.port, ready, done))
    echo.start()
    metrics = free_port()
    proc = ingest_process(db_url, broker, 1, workdir, f"bench-latency-{epoch}", metrics_port=metrics)
    curve, published = [], 0
    try:
        if not ready.wait(30):
            raise SystemExit("bench: the raw echo subscriber did not subscribe within 30 s")
        time.sleep(SETTLE_S)  # ingest connects and subscribes
        for i, rate in enumerate(rates, 1):
            n = max(1, int(rate * seconds))
            _wait_caught_up(metrics, published, proc, workdir)
            log(f"latency [{i}/{len(rates)}] {rate:g} events/s for {seconds:g} s: raw paho echo, then ingest")
            raw = publish(broker.port, keys, n, epoch + 2 * i, workdir, rate=rate, raw=True)
            ing = publish(broker.port, keys, n, epoch + 2 * i + 1, workdir, rate=rate)
            published += n
            curve.append(summarize(rate, ing, raw))
    finally:
        stop(proc)
        done.set()
        echo.join(10)
    return curve


def _wait_caught_up(metrics_port: int, published: int, proc: subprocess.Popen[bytes], workdir: Path) -> None:
    """Each rate starts with no backlog left over from the one before."""
    deadline = time.monotonic() + DRAIN_WAIT_S
    while committed([metrics_port]) < published:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"bench: ingest did not catch up within {DRAIN_WAIT_S:g} s; see {workdir / 'ingest.log'}")
        time.sleep(0.1)


def percentiles(paced: dict[str, Any]) -> dict[str, Any]:
    """p50/p90/p99/max in ms over every event sent; None where that share was never acked in time."""
    lat, n = paced["latencies"], paced["n"]
    out: dict[str, Any] = {}
    for q in (0.5, 0.9, 0.99):
        i = min(n - 1, int(q * n))
        out[f"p{int(q * 100)}_ms"] = round(lat[i] * 1000, 1) if i < len(lat) else None
    out["max_ms"] = round(lat[-1] * 1000, 1) if lat and len(lat) == n else None
    return out


def summarize(rate: float, ing: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"rate": rate, "achieved_rate": round(ing["achieved_rate"], 1), "sent": ing["n"],
                           "acked": ing["acked"], "ack_wait_s": ing["ack_wait_s"], **percentiles(ing)}
    row["raw"] = {"achieved_rate": round(raw["achieved_rate"], 1), "sent": raw["n"], "acked": raw["acked"],
                  **percentiles(raw)}
    both = row["p99_ms"] is not None and row["raw"]["p99_ms"]
    row["p99_vs_raw"] = round(row["p99_ms"] / row["raw"]["p99_ms"], 1) if both else None
    return row


# --- report -------------------------------------------------------------------------------------


def measure(events: int, devices: int, workers: list[int], repeat: int, rates: list[float],
            seconds: float) -> dict[str, Any]:
    why = reachable(PG_URL)
    if why:
        raise SystemExit(f"bench needs PostgreSQL: {why} (set MOTCUA_BENCH_PG_URL)")
    workdir = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    broker = Mosquitto(workdir / "broker", max_queued=10_000_000, extra=["max_inflight_messages 0",
                                                                          "max_queued_bytes 0"]).start()
    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                   f"PostgreSQL and Mosquitto on the same machine",
        "events": events, "devices": devices, "repeat": repeat, "throughput": [],
    }
    try:
        with scratch_database(PG_URL, prefix="motcua_bench") as db_url:
            keys = setup_office(db_url, devices, workdir)
            epoch = 0
            for w in workers:
                raws, ings = [], []
                for attempt in range(1, repeat + 1):
                    epoch += 1
                    log(f"[{attempt}/{repeat}] raw paho subscribers x{w}: drain {events} events")
                    raws.append(raw_rate(broker.port, keys, workdir, events, w, epoch))
                    epoch += 1
                    log(f"[{attempt}/{repeat}] ingest --workers {w}: drain {events} events")
                    ings.append(ingest_rate(db_url, broker, keys, workdir, events, w, epoch))
                raw, ing = statistics.median(raws), statistics.median(ings)
                out["throughput"].append({"workers": w, "raw_events_per_s": round(raw),
                                          "ingest_events_per_s": round(ing), "ratio": round(ing / raw, 2),
                                          "raw_range": [round(min(raws)), round(max(raws))],
                                          "ingest_range": [round(min(ings)), round(max(ings))]})
            out["latency"] = latency_curve(db_url, broker, keys, workdir, rates, seconds, epoch + 1)
    finally:
        broker.kill()
    out["latency_seconds_per_rate"] = seconds
    return out


FULL_RATES = [100.0, 500.0, 1000.0, 2000.0, 4000.0]  # from a quiet office to past one worker's drain rate
QUICK_RATES = [100.0, 200.0, 400.0]


def run(quick: bool = False) -> dict[str, Any]:
    """The suite's entry (bench/suite.py): drains and a latency curve, smaller with `quick`."""
    if quick:
        return measure(3000, 50, [1], 1, QUICK_RATES, 2.0)
    return measure(30_000, 200, [1, 2], 3, FULL_RATES, 15.0)


def table(r: dict[str, Any]) -> str:
    lines = [r["machine"], f"{r['events']} signed events from {r['devices']} devices per drain; medians of "
             f"{r['repeat']} alternating drains (min-max)", "",
             "workers   raw paho (events/s)        ingest (events/s)       ingest / raw"]
    for t in r["throughput"]:
        raw = f"{t['raw_events_per_s']:,} ({t['raw_range'][0]:,}-{t['raw_range'][1]:,})"
        ing = f"{t['ingest_events_per_s']:,} ({t['ingest_range'][0]:,}-{t['ingest_range'][1]:,})"
        lines.append(f"{t['workers']:>7}   {raw:<24}   {ing:<22}   {t['ratio']:>5.2f}")
    one = next((t for t in r["throughput"] if t["workers"] == 1), None)
    for t in r["throughput"]:
        if one and t["workers"] > 1:
            lines.append(f"ingest --workers {t['workers']} / one raw subscriber: "
                         f"{t['ingest_events_per_s'] / one['raw_events_per_s']:.2f}")
    lines += ["", f"press-to-ack, one worker, {r['latency_seconds_per_rate']:g} s per offered rate; baseline: "
                  "the raw paho echo at the same rate (p50 / p99)",
              "offered/s   achieved/s   p50 ms   p90 ms   p99 ms   max ms   acked          raw p50 / p99 ms   p99/raw"]
    for lat in r["latency"]:
        raw = lat["raw"]
        lines.append(f"{lat['rate']:>9g}   {lat['achieved_rate']:>10}   {_ms(lat['p50_ms'])}   {_ms(lat['p90_ms'])}   "
                     f"{_ms(lat['p99_ms'])}   {_ms(lat['max_ms'])}   {lat['acked']:>6}/{lat['sent']:<6}   "
                     f"{_ms(raw['p50_ms'])} / {_ms(raw['p99_ms'])}   {lat['p99_vs_raw'] or '-':>7}")
    return "\n".join(lines)


def _ms(v: float | None) -> str:
    """A latency cell; None is a share of events not acked within the publisher's wait."""
    return f"{v:>6}" if v is not None else f"{'lost':>6}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=30_000)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3, help="alternating drains per configuration (median)")
    ap.add_argument("--rates", type=float, nargs="+", default=FULL_RATES, help="offered loads, events/s")
    ap.add_argument("--seconds", type=float, default=15.0, help="how long each offered rate is held")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args()
    result = measure(args.events, args.devices, args.workers, args.repeat, args.rates, args.seconds)
    print(json.dumps(result) if args.json else table(result))


if __name__ == "__main__":
    main()
