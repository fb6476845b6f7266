"""The load side of bench/ingest.py, run as its own process: signed events from many devices.

    python -m bench.publisher --port P --keys keys.json --n N --epoch E [--rate R --acks [--raw]] --out result.json

burst mode (no --rate): signs everything first, then publishes as fast as the broker takes QoS 1.
paced mode (--rate R): signs and publishes at R events/s; with --acks, records when each event's
end-to-end ack arrives, so latency = ack receipt - publish, on one clock (the same machine).
--raw (the baseline of that latency): the same signed events go to RAW_PREFIX/<dev>/<epoch>/<seq>
instead, where bench/ingest.py's bare paho echo sends each one straight back under ECHO_PREFIX: the
broker's round trip through one subscriber, with no work done on the way.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from motcua.protocol import codec, parse_json_strict

INFLIGHT = 2000  # QoS 1 publishes awaiting PUBACK: enough to keep loopback busy
# Outside motcua/v1/ so that an ingest worker on the same broker never sees the baseline's traffic;
# epoch and sequence number ride in the topic so the echo need not parse the event.
RAW_PREFIX, ECHO_PREFIX = "bench/raw/", "bench/echo/"
ACK_WAIT_S = 30.0  # after the last publish, how long acks may still arrive; later ones count as lost


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
    client.max_inflight_messages_set(INFLIGHT)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _payload(key: dict[str, str], epoch: int, seq: int, ts: int) -> tuple[str, bytes]:
    body = codec.rating_body(1 + seq % 4, 4)
    data = codec.encode_event(bytes.fromhex(key["secret_hex"]), dev=key["id"], ep=epoch, seq=seq, up=seq * 5000,
                              ts=ts, typ="rating", body=body)
    return f"motcua/v1/dev/{key['id']}/evt", data


def burst(port: int, keys: list[dict[str, str]], n: int, epoch: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    work = [_payload(keys[i % len(keys)], epoch, i // len(keys) + 1, now) for i in range(n)]
    client = _client(port, f"bench-pub-{epoch}")
    started = time.time()
    infos = [client.publish(t, p, qos=1) for t, p in work]
    for info in infos:
        info.wait_for_publish(120)
    done = time.time()
    client.loop_stop()
    client.disconnect()
    return {"started": started, "published": done, "n": n}


def paced(port: int, keys: list[dict[str, str]], n: int, epoch: int, rate: float, acks: bool,
          raw: bool = False) -> dict[str, Any]:
    sent: dict[tuple[str, int], float] = {}
    acked: dict[tuple[str, int], float] = {}
    lock = threading.Lock()
    client = _client(port, f"bench-pub-{epoch}")
    if acks:
        client.on_message = _on_echo(acked, lock, epoch) if raw else _on_ack(acked, lock, epoch)
        client.subscribe(f"{ECHO_PREFIX}#" if raw else "motcua/v1/dev/+/ack", qos=1)
        time.sleep(0.5)
    started = time.time()
    for i in range(n):
        target = started + i / rate
        pause = target - time.time()
        if pause > 0:
            time.sleep(pause)
        key = keys[i % len(keys)]
        seq = i // len(keys) + 1
        topic, data = _payload(key, epoch, seq, int(time.time() * 1000))
        if raw:
            topic = f"{RAW_PREFIX}{key['id']}/{epoch}/{seq}"
        with lock:
            sent[(key["id"], seq)] = time.time()
        client.publish(topic, data, qos=1)
    deadline = time.time() + ACK_WAIT_S
    while acks and time.time() < deadline:
        with lock:
            if len(acked) >= n:
                break
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    latencies = sorted(acked[k] - sent[k] for k in acked if k in sent)
    return {"started": started, "n": n, "acked": len(latencies), "latencies": latencies, "ack_wait_s": ACK_WAIT_S,
            "achieved_rate": n / (max(sent.values()) - started) if n > 1 else 0.0}


def _on_ack(acked: dict[tuple[str, int], float], lock: threading.Lock, epoch: int) -> Any:
    """Ingest's signed acks list (epoch, seq, code) per device; the first ack of an event counts."""
    def on_ack(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        at = time.time()
        doc = parse_json_strict(bytes(msg.payload))
        with lock:
            for ep, seq, _code in doc["acks"]:
                if ep == epoch:
                    acked.setdefault((doc["dev"], seq), at)
    return on_ack


def _on_echo(acked: dict[tuple[str, int], float], lock: threading.Lock, epoch: int) -> Any:
    """An echo of an earlier run (a late one) carries another epoch and is not counted."""
    def on_echo(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        at = time.time()
        dev, ep, seq = msg.topic[len(ECHO_PREFIX):].rsplit("/", 2)
        if int(ep) == epoch:
            with lock:
                acked.setdefault((dev, int(seq)), at)
    return on_echo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--keys", type=Path, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--epoch", type=int, required=True)
    ap.add_argument("--rate", type=float)
    ap.add_argument("--acks", action="store_true")
    ap.add_argument("--raw", action="store_true", help="to the bare echo instead of ingest (the baseline)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    keys = json.loads(args.keys.read_text())
    if args.rate:
        result = paced(args.port, keys, args.n, args.epoch, args.rate, args.acks, args.raw)
    else:
        result = burst(args.port, keys, args.n, args.epoch)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
