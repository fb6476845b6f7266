"""A device host: one process running many virtual counter devices on the real device code path.

Each virtual device is a `device.agent.DeviceAgent` (the kiosk's and the CPython devices' outbox and
MQTT link) on a simulated clock, or, for the counters the scenario runs as MicroPython
(`[devices] micropython`), the real ESP32 firmware in a `micropython` process (simulator/firmware.py).
The host plays its devices' timelines (presses, complaints, kiosk sign-ins, faults) when the simulated
clock reaches them, and writes the ground truth of everything it sent to a JSON-lines file: the bytes'
digest and what the server should make of them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from device.agent import DeviceAgent
from motcua.protocol import codec
from simulator.clock import DeviceClock, SimClock
from simulator.firmware import FirmwareBox, SimSntp, firmware_knobs, write_clock
from simulator.netfault import FaultyNetwork
from simulator.world import Action, Counter, expectation

log = logging.getLogger("motcua.simulator.fleet")

STATUS_EVERY_S = 1.0  # how often the host counts its outboxes for the progress line
MAX_SLEEP_S = 0.2  # how long the host sleeps between looks at the clock: stop requests are seen this fast
INJECT_CONFIRM_S = 120.0  # how long an injected message may wait for the broker (reconnects included)
HB_REPLAY_MIN_AGE_MS = 10 * 60_000  # a replayed heartbeat is this old at least: the server sees a replay
STATUS_FIELDS = ("sent", "pending", "lag_s", "done", "faults")


@dataclass
class HostConfig:
    index: int
    clock: SimClock
    broker: tuple[str, int]
    counters: list[Counter]
    secrets: dict[str, str]  # device id -> secret hex
    actions: list[Action]
    levels: int
    state_dir: Path
    truth_path: Path
    heartbeat_s: float
    resend_after_s: float  # on the device's (simulated) clock
    verifiers: dict[str, str]  # official code -> PIN verifier, derived once (kiosk sessions)
    tick_s: float = 1.0  # the links' idle tick: presses wake them at once anyway
    api_url: str = ""  # the run's HTTP API: kiosk counters upload their clips there
    kiosk: Any = None  # the scenario's [kiosk] table (camera and trigger config of kiosk counters)
    firmware_build: Path | None = None  # the .mpy build, when some counters run the firmware
    office_factor: float = 1.0  # the scenario's compression (office hours)


@dataclass
class _Injection:
    topic: str
    payload: bytes
    then: Callable[[], None]  # records the truth once the broker has the message
    give_up: float  # time.monotonic()
    info: mqtt.MQTTMessageInfo | None = None  # None: not published yet (no connection)


class VirtualDevice:
    def __init__(self, counter: Counter, secret_hex: str, cfg: HostConfig, port: int) -> None:
        self.counter = counter
        self.secret_hex = secret_hex
        self.cfg = cfg
        self.port = port
        self.clock = DeviceClock(cfg.clock, synced=counter.synced)
        self.state: dict[str, Any] = {"skew": None, "on": False}
        self.sent: deque[bytes] = deque(maxlen=50)  # recent genuine payloads (for duplicates and replays)
        self.heartbeats: deque[tuple[int, bytes]] = deque(maxlen=200)  # (sim ms, bytes) seen on the wire
        self.agent: DeviceAgent | None = None
        self.kiosk = _kiosk(counter, secret_hex, cfg, self.clock) if counter.kind == "kiosk" else None

    def boot(self, at_ms: int) -> None:
        self.clock.boot(at_ms)
        self.agent = DeviceAgent(
            device_id=self.counter.device_id, secret_hex=self.secret_hex, state_dir=self.cfg.state_dir,
            host=self.cfg.broker[0], port=self.port, fw="sim-1", levels=self.cfg.levels, clock=self.clock,
            clock_synced=self.clock.is_synced, uptime_ms=self.clock.uptime_ms,
            resend_after_s=self.cfg.resend_after_s, heartbeat_s=self.cfg.heartbeat_s, tick_s=self.cfg.tick_s).start()
        if self.kiosk is not None:
            self.kiosk.attach(self.agent)
        self.state["on"] = True

    def power_cut(self) -> None:
        assert self.agent is not None
        if self.kiosk is not None:
            self.kiosk.detach()
        self.agent.link.kill()  # no DISCONNECT: the broker only learns from the keepalive and the will
        self.agent.outbox.close()
        self.agent = None
        self.state["on"] = False

    def pending(self) -> int:
        """Events in the outbox, and at a kiosk the clips the server has not confirmed yet."""
        return (self.agent.pending() if self.agent is not None else 0) + (self.kiosk.pending() if self.kiosk else 0)

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()


def _kiosk(counter: Counter, secret_hex: str, cfg: HostConfig, clock: DeviceClock) -> Any:
    from simulator.evidence import SimKiosk  # OpenCV and PyAV: loaded only by hosts that have kiosks

    return SimKiosk(device_id=counter.device_id, secret_hex=secret_hex, clock=clock, settings=cfg.kiosk,
                    api_url=cfg.api_url, broker=cfg.broker, state_dir=cfg.state_dir, levels=cfg.levels)


class FirmwareDevice:
    """A counter running the real firmware (simulator/firmware.py), in the shape the Host plays."""

    def __init__(self, counter: Counter, box: FirmwareBox) -> None:
        self.counter = counter
        self.box = box
        self.state: dict[str, Any] = {"skew": None, "on": False}
        self.sent: deque[bytes] = deque(maxlen=50)
        self.heartbeats: deque[tuple[int, bytes]] = deque(maxlen=200)
        self.failed = 0  # presses the firmware made no event for

    def boot(self, at_ms: int) -> None:
        self.box.boot()  # its uptime starts now on the simulated clock (board_host.py --clock)
        self.state["on"] = True

    def power_cut(self) -> None:
        self.box.power_cut()
        self.state["on"] = False

    def pending(self) -> int:
        return self.box.pending()  # while it is off: what its flash holds, as last reported

    def stop(self) -> None:
        self.box.stop()


Device = VirtualDevice | FirmwareDevice


class Host:
    def __init__(self, cfg: HostConfig) -> None:
        self.cfg = cfg
        self.net: FaultyNetwork | None = None
        self.devices: dict[str, Device] = {}
        self.sntp: SimSntp | None = None
        self.truth: TextIO = cfg.truth_path.open("a", encoding="utf-8")
        self.raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-mischief-{cfg.index}")
        self.raw.on_message = self._captured
        self.raw.on_connect = self._subscribe
        self.raw.reconnect_delay_set(1, 5)  # back soon after a broker restart: injections wait for it
        self.lag_s = 0.0
        self.sent = 0
        self.faults = 0
        self._hb_topics: dict[str, Device] = {}
        self._pending, self._pending_at = 0, 0.0
        self._injected: list[_Injection] = []
        self.cameras: Any = None  # renders the post-roll of kiosk clips (simulator/evidence.py)

    # --- set-up ------------------------------------------------------------------------------

    def start(self) -> Host:
        proxied = [c for c in self.cfg.counters if c.proxied]
        if proxied:
            self.net = FaultyNetwork(self.cfg.broker).start()
        for c in self.cfg.counters:
            port = self.net.add(c.device_id) if (self.net and c.proxied) else self.cfg.broker[1]
            dev = self._firmware(c, port) if c.firmware else VirtualDevice(c, self.cfg.secrets[c.device_id],
                                                                               self.cfg, port)
            self.devices[c.code] = dev
            dev.boot(self.cfg.clock.now_ms())
        for a in self.cfg.actions:
            if a.kind == "replay" and a.counter:
                dev = self.devices[a.counter]
                self._hb_topics[f"motcua/v1/dev/{dev.counter.device_id}/hb"] = dev
        self.raw.connect_async(*self.cfg.broker)
        self.raw.loop_start()
        kiosks = [d.kiosk for d in self.devices.values() if isinstance(d, VirtualDevice) and d.kiosk is not None]
        if kiosks:
            from simulator.evidence import CameraTicker

            self.cameras = CameraTicker(kiosks, self.cfg.clock).start()
        return self

    def _firmware(self, c: Counter, port: int) -> FirmwareDevice:
        cfg = self.cfg
        if cfg.firmware_build is None:
            raise RuntimeError(f"{c.code} runs the firmware but the host got no firmware build (run.py)")
        clock_file = cfg.state_dir / f"simclock-host-{cfg.index}.json"
        if not clock_file.exists():
            write_clock(cfg.clock, clock_file)
        if c.synced and self.sntp is None:
            self.sntp = SimSntp(cfg.clock).start()
        knobs = firmware_knobs(cfg.clock, office_factor=cfg.office_factor, heartbeat_s=cfg.heartbeat_s,
                               resend_after_s=cfg.resend_after_s)
        box = FirmwareBox(root=cfg.state_dir / f"fw-{c.device_id}", build=cfg.firmware_build, clock_file=clock_file,
                          device_id=c.device_id, secret_hex=cfg.secrets[c.device_id], mqtt_port=port,
                          ntp_port=self.sntp.port if (c.synced and self.sntp) else None, knobs=knobs,
                          levels=cfg.levels)
        return FirmwareDevice(c, box)

    def _subscribe(self, client: mqtt.Client, *_: Any) -> None:
        for t in self._hb_topics:
            client.subscribe(t, qos=0)

    def _captured(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        dev = self._hb_topics.get(msg.topic)
        if dev is not None:
            dev.heartbeats.append((self.cfg.clock.now_ms(), bytes(msg.payload)))

    # --- the timeline --------------------------------------------------------------------------

    def play(self, stop: threading.Event | Any, status: Any = None) -> None:
        """Perform every action when its simulated time comes; `status` (shared array) shows progress."""
        for action in self.cfg.actions:
            if not self._wait_until(action.at_ms, stop, status):
                return
            self.lag_s = max(0.0, time.time() - self.cfg.clock.real_at(action.at_ms))
            try:
                getattr(self, f"_do_{action.kind}")(action, self.devices[action.counter or ""])
            except Exception:
                log.exception("host %d: %s at %s failed", self.cfg.index, action.kind, action.counter)
        self.settle_injections(wait_s=INJECT_CONFIRM_S)
        self._report(status, done=1)

    def _wait_until(self, at_ms: int, stop: Any, status: Any) -> bool:
        while True:
            if stop.is_set():
                return False
            ahead = self.cfg.clock.real_at(at_ms) - time.time()
            if ahead <= 0:
                return True
            self.settle_injections()
            self._report(status)
            time.sleep(min(ahead, MAX_SLEEP_S))

    def _report(self, status: Any, done: int | None = None) -> None:
        if status is None:
            return
        now = time.monotonic()
        if done is not None or now - self._pending_at >= STATUS_EVERY_S:
            # a COUNT(*) over every device's outbox: 250 queries, so not at every look at the clock
            self._pending, self._pending_at = self.pending(), now
        status[0], status[1], status[2], status[4] = self.sent, self._pending, self.lag_s, self.faults
        if done is not None:
            status[3] = done

    def pending(self) -> int:
        return sum(d.pending() for d in self.devices.values())

    def _record(self, doc: dict[str, Any]) -> None:
        self.truth.write(json.dumps(doc, separators=(",", ":")) + "\n")

    def _fired(self, name: str, at_ms: int, **detail: Any) -> None:
        self.faults += 1
        self._record({"k": "fault", "name": name, "at": at_ms, **detail})

    def _genuine(self, dev: Device, action: Action, entry: Any, typ: str) -> None:
        expect, official = expectation(action, dev.state)
        dev.sent.append(entry.payload)
        self.sent += 1
        self._record({"k": "evt", "dev": dev.counter.device_id, "ep": entry.ep, "seq": entry.seq, "typ": typ,
                      "sha": hashlib.sha256(entry.payload).hexdigest(), "at": action.at_ms, "expect": expect,
                      "official": official, "tag": action.args.get("tag"), "counter": dev.counter.code,
                      **({"firmware": True} if isinstance(dev, FirmwareDevice) else {})})

    # --- citizens and officials -----------------------------------------------------------------

    def _pinned(self, dev: VirtualDevice, action: Action) -> DeviceAgent | None:
        if dev.agent is None:
            log.warning("%s: %s while the device is off: skipped", dev.counter.device_id, action.kind)
            return None
        dev.clock.pin(action.at_ms)
        return dev.agent

    def _do_press(self, action: Action, dev: Device) -> None:
        if isinstance(dev, FirmwareDevice):
            self._firmware_event(action, dev, "rating")
            return
        agent = self._pinned(dev, action)
        if agent is None:
            return
        try:
            entry = agent.press(action.args["value"], txn=action.args.get("txn"))
        finally:
            dev.clock.pin(None)
        self._genuine(dev, action, entry, "rating")
        if dev.kiosk is not None:
            self._kiosk_incident(dev, action, dev.kiosk.rated(action.args["value"], entry, action.at_ms))

    def _kiosk_incident(self, dev: VirtualDevice, action: Action, made: Any) -> None:
        """A kiosk's incident (clip or not), with what the server should make of it and which clip it names."""
        if made is None:
            return
        entry, clip, camera = made
        tag = action.args.get("tag")  # an incident after a mashed press is not itself a mashed press
        self._genuine(dev, replace(action, args={**action.args, "tag": None if tag == "mash" else tag}), entry,
                      "incident")
        self._record({"k": "clip_ref", "dev": dev.counter.device_id, "ep": entry.ep, "seq": entry.seq, "clip": clip,
                      "camera": camera})

    def _do_complain(self, action: Action, dev: Device) -> None:
        if isinstance(dev, FirmwareDevice):
            self._firmware_event(action, dev, "incident")
            return
        if dev.kiosk is not None and dev.agent is not None:
            self._kiosk_incident(dev, action, dev.kiosk.complain(action.at_ms, action.args.get("note")))
            return
        agent = self._pinned(dev, action)
        if agent is None:
            return
        try:
            entry = agent.complain(note=action.args.get("note"))
        finally:
            dev.clock.pin(None)
        self._genuine(dev, action, entry, "incident")

    def _firmware_event(self, action: Action, dev: FirmwareDevice, typ: str) -> None:
        """A citizen presses the box's button now (the simulated time of the action); the firmware stamps
        the event itself on its simulated clock. The ground truth takes (ep, seq) and the bytes from the
        firmware's own answer on the control channel: the "@evt" line it prints once the event is on
        flash, with the payload App.encode makes of that flash record, the bytes of every (re-)send."""
        if not dev.state["on"]:
            log.warning("%s: %s while the box is off: skipped", dev.counter.device_id, action.kind)
            return
        try:
            entry = dev.box.press(action.args["value"]) if typ == "rating" else dev.box.complaint()
        except RuntimeError:
            # The citizen pressed and the firmware made nothing of it: recorded as an event that cannot be
            # stored, so verify counts it lost (a firmware failure is not the server's, but it is a loss).
            log.exception("%s: %s", dev.counter.device_id, action.kind)
            dev.failed += 1
            expect, official = expectation(action, dev.state)
            self._record({"k": "evt", "dev": dev.counter.device_id, "ep": -1, "seq": -dev.failed, "typ": typ,
                          "sha": "", "at": action.at_ms, "expect": expect, "official": official,
                          "tag": action.args.get("tag"), "counter": dev.counter.code, "firmware": True})
            return
        self._genuine(dev, action, entry, typ)

    def _session(self, action: Action, dev: VirtualDevice, which: str) -> None:
        agent = self._pinned(dev, action)
        if agent is None:
            return
        try:
            official = action.args["official"]
            entry = agent.session(which, official=official, method="pin", secret=action.args["pin"],
                                  verifier=self.cfg.verifiers.get(official))
        finally:
            dev.clock.pin(None)
        self._genuine(dev, action, entry, "session")

    def _do_sign_in(self, action: Action, dev: VirtualDevice) -> None:
        self._session(action, dev, "in")

    def _do_sign_out(self, action: Action, dev: VirtualDevice) -> None:
        self._session(action, dev, "out")

    # --- faults of one device ------------------------------------------------------------------

    def _do_net_drop(self, action: Action, dev: Device) -> None:
        assert self.net is not None
        self.net.cut(dev.counter.device_id)
        self._fired("network_drop", action.at_ms, dev=dev.counter.device_id,
                    minutes=round((action.args["until"] - action.at_ms) / 60_000, 1))

    def _do_net_restore(self, action: Action, dev: Device) -> None:
        assert self.net is not None
        self.net.restore(dev.counter.device_id)

    def _do_power_cut(self, action: Action, dev: Device) -> None:
        if dev.state["on"]:
            dev.power_cut()  # a MicroPython counter: SIGKILL of its process
            self._fired("power_cut", action.at_ms, dev=dev.counter.device_id)

    def _do_power_on(self, action: Action, dev: Device) -> None:
        if not dev.state["on"]:
            dev.boot(action.at_ms)  # a new boot epoch; the outbox kept everything unacknowledged

    def _skipped(self, action: Action, dev: FirmwareDevice, name: str, reason: str) -> None:
        log.warning("%s: %s skipped: %s", dev.counter.device_id, name, reason)
        self._record({"k": "skipped", "fault": name, "dev": dev.counter.device_id, "at": action.at_ms,
                      "reason": reason})

    def _do_clock_skew(self, action: Action, dev: Device) -> None:
        if isinstance(dev, FirmwareDevice):
            # The world does not pick MicroPython counters for this (world.py _pick); only a scenario with
            # no other candidate gets here.
            self._skipped(action, dev, "clock_skew", "the firmware takes its time from NTP; it has no offset to set")
            return
        dev.clock.offset_ms = action.args["offset_ms"]
        dev.state["skew"] = action.args["skew"]
        self._fired("clock_skew", action.at_ms, dev=dev.counter.device_id, skew=action.args["skew"])

    def _do_lose_sync(self, action: Action, dev: Device) -> None:
        if isinstance(dev, FirmwareDevice):
            self._skipped(action, dev, "unsynced_clock", "the firmware keeps its NTP offset once it has one")
            return
        dev.clock.synced = False
        self._fired("unsynced_clock", action.at_ms, dev=dev.counter.device_id)

    def _do_camera_fail(self, action: Action, dev: VirtualDevice) -> None:
        assert dev.kiosk is not None
        dev.kiosk.break_camera()
        self._fired("camera_failure", action.at_ms, dev=dev.counter.device_id,
                    minutes=round((action.args["until"] - action.at_ms) / 60_000, 1))

    def _do_camera_restore(self, action: Action, dev: VirtualDevice) -> None:
        assert dev.kiosk is not None
        dev.kiosk.repair_camera()

    def _do_fault(self, action: Action, dev: Device) -> None:
        self._fired(action.args["name"], action.at_ms, dev=dev.counter.device_id)

    # --- forged, repeated and broken messages (someone on the network) --------------------------

    def _inject(self, dev_id: str, payload: bytes, then: Callable[[], None], kind: str = "evt") -> None:
        """Publish as someone on the network would, without holding up the timeline: `then` records the
        truth once the broker has taken the message (its PUBACK). Waiting here instead stalled every
        device of the host for 20 s per injection while the raw client reconnected after a broker restart."""
        self._injected.append(_Injection(f"motcua/v1/dev/{dev_id}/{kind}", payload, then,
                                         time.monotonic() + INJECT_CONFIRM_S))
        self.settle_injections()

    def settle_injections(self, *, wait_s: float = 0.0) -> int:
        """Publish what waits for a connection, record what the broker has taken, give up on what is older
        than INJECT_CONFIRM_S (never recorded: verify counts it as an unrecorded rejection). Returns how
        many are still waiting."""
        deadline = time.monotonic() + wait_s
        while True:
            waiting = []
            for inj in self._injected:
                if inj.info is None and self.raw.is_connected():
                    info = self.raw.publish(inj.topic, inj.payload, qos=1)
                    inj.info = info if info.rc == mqtt.MQTT_ERR_SUCCESS else None
                try:
                    taken = inj.info is not None and inj.info.is_published()
                except (RuntimeError, ValueError):  # the connection went before the broker took it
                    inj.info, taken = None, False
                if taken:
                    inj.then()
                elif time.monotonic() < inj.give_up:
                    waiting.append(inj)
                else:
                    log.warning("host %d: an injected message on %s was never taken by the broker", self.cfg.index,
                                inj.topic)
            self._injected = waiting
            if not waiting or time.monotonic() >= deadline:
                return len(waiting)
            time.sleep(0.1)

    def _rejected(self, name: str, action: Action, dev_id: str, payload: bytes, reason: str) -> None:
        def then() -> None:
            self._record({"k": "rej", "dev": dev_id, "sha": hashlib.sha256(payload).hexdigest(), "reason": reason,
                          "fault": name, "at": action.at_ms})
            self._fired(name, action.at_ms, dev=dev_id)

        self._inject(dev_id, payload, then, "hb" if name == "replay" else "evt")

    def _duplicate(self, name: str, action: Action, dev: Device, payload: bytes, **detail: Any) -> None:
        def then() -> None:
            self._record({"k": "dup", "dev": dev.counter.device_id, "sha": hashlib.sha256(payload).hexdigest()})
            self._fired(name, action.at_ms, dev=dev.counter.device_id, **detail)

        self._inject(dev.counter.device_id, payload, then)

    def _do_duplicate_send(self, action: Action, dev: Device) -> None:
        if dev.sent:
            self._duplicate("duplicate_send", action, dev, dev.sent[-1])

    def _do_forged_signature(self, action: Action, dev: Device) -> None:
        payload = codec.encode_event(secrets.token_bytes(32), dev=dev.counter.device_id, ep=1,
                                     seq=10**9 + secrets.randbelow(10**6), up=1000, ts=action.at_ms, typ="rating",
                                     body=codec.rating_body(1, self.cfg.levels))
        self._rejected("forged_signature", action, dev.counter.device_id, payload, "bad_signature")

    def _do_malformed_payload(self, action: Action, dev: Device) -> None:
        payload = b'{"v":1,"dev":"' + dev.counter.device_id.encode() + b'","ep":' + secrets.token_hex(6).encode()
        self._rejected("malformed_payload", action, dev.counter.device_id, payload, "malformed")

    def _do_unknown_device(self, action: Action, dev: Device) -> None:
        ghost = action.args["ghost"]
        payload = codec.encode_event(secrets.token_bytes(32), dev=ghost, ep=1, seq=1 + secrets.randbelow(10**6),
                                     up=5000, ts=action.at_ms, typ="rating", body=codec.rating_body(4, self.cfg.levels))
        self._rejected("unknown_device", action, ghost, payload, "unknown_device")

    def _do_replay(self, action: Action, dev: Device) -> None:
        if action.args["what"] == "event":
            # An old event's bytes, captured and sent again much later: a duplicate, stored once.
            if len(dev.sent) > 1:
                self._duplicate("replay", action, dev, dev.sent[0], what="event")
            return
        old = [p for t, p in dev.heartbeats if action.at_ms - t >= HB_REPLAY_MIN_AGE_MS]
        if old:
            self._rejected("replay", action, dev.counter.device_id, old[0], "replay")

    # --- shutting down -------------------------------------------------------------------------

    def stop(self) -> None:
        if self.cameras is not None:
            self.cameras.stop()
        for dev in self.devices.values():
            try:
                if isinstance(dev, VirtualDevice) and dev.kiosk is not None:
                    dev.kiosk.detach()
                    for doc in dev.kiosk.records():  # each clip's hash, from the file the kiosk wrote
                        self._record(doc)
                dev.stop()
            except Exception:
                log.exception("%s: stopping failed", dev.counter.device_id)
        self.raw.loop_stop()
        self.raw.disconnect()
        if self.net is not None:
            self.net.close()
        if self.sntp is not None:
            self.sntp.close()
        self.truth.close()


def host_main(cfg: HostConfig, stop: Any, shutdown: Any, status: Any) -> None:
    """Entry point of a device-host process: play the timeline, keep delivering until `shutdown`."""
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s %(levelname)-7s [host {cfg.index}] "
                                                      "%(name)s: %(message)s")
    parent = os.getppid()
    host = Host(cfg).start()
    try:
        host.play(stop, status)
        while not shutdown.wait(0.5) and os.getppid() == parent:  # an orphan stops by itself
            host._report(status)
    finally:
        host._report(status)
        host.stop()
