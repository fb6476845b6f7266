"""The offices' queue systems (sign-ins at button-box counters, over the REST API) and the faults that
hit the whole installation (broker and server restarts), played on the simulated clock.

Sessions are reported with the time they happened (`at`), in batches (POST /api/v1/sessions/batch), as
a queue system that batches or retries does; lanes keep each unit's changes in order while units
proceed in parallel.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from simulator.clock import SimClock
from simulator.world import Action

log = logging.getLogger("motcua.simulator")

# Parallel HTTP clients: a burst of 500 sign-ins at opening time must not lag by sim-hours. Each call
# waits mostly on PostgreSQL (locks, the commit's fsync), so lanes overlap well even on two cores.
LANES = 8
RETRIES = 5  # a 503 (database busy) or a connection refused during a restart is tried again
BATCH_MAX = 200  # session changes per POST /api/v1/sessions/batch


class Lane(threading.Thread):
    """Plays its actions in order; what has come due by the time the previous call returned goes in one
    batch, as a queue system reports a whole office's shift change at once."""

    def __init__(self, name: str, actions: list[Action], clock: SimClock, stop: threading.Event,
                 perform: Callable[[list[Action]], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.actions, self.clock, self.stop_event, self.perform = actions, clock, stop, perform
        self.done = 0
        self.lag_s = 0.0  # how late the last action was performed, in real seconds

    def run(self) -> None:
        i = 0
        while i < len(self.actions):
            while not self.stop_event.is_set():
                ahead = self.clock.real_at(self.actions[i].at_ms) - time.time()
                if ahead <= 0:
                    break
                self.stop_event.wait(min(ahead, 0.2))
            if self.stop_event.is_set():
                return
            now = time.time()
            j = i + 1
            while j < len(self.actions) and j - i < BATCH_MAX and self.clock.real_at(self.actions[j].at_ms) <= now:
                j += 1
            self.lag_s = max(0.0, now - self.clock.real_at(self.actions[i].at_ms))
            try:
                self.perform(self.actions[i:j])
            except Exception:
                log.exception("%s: %d action(s) from %s failed", self.name, j - i, self.actions[i].kind)
            self.done += j - i
            i = j


class QueueSystem:
    def __init__(self, *, api_url: str, token: str, clock: SimClock, truth_path: Path,
                 restart_broker: Callable[[], None] | None, restart_server: Callable[[], None]) -> None:
        self.api_url, self.token, self.clock = api_url, token, clock
        self.restart_broker, self.restart_server = restart_broker, restart_server
        self.truth = truth_path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.failed = 0
        self.lanes: list[Lane] = []
        self.stop_event = threading.Event()

    def start(self, actions: list[Action], units_of: dict[str, str]) -> QueueSystem:
        lanes: list[list[Action]] = [[] for _ in range(LANES + 1)]
        order = sorted(set(units_of.values()))
        for a in actions:
            if a.counter is None:
                lanes[LANES].append(a)  # installation-wide faults: their own lane
            else:
                lanes[order.index(units_of[a.counter]) % LANES].append(a)
        for i, acts in enumerate(lanes):
            client = httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {self.token}"},
                                  timeout=30)
            lane = Lane(f"queue-lane-{i}", acts, self.clock, self.stop_event, self._performer(client))
            lane.start()
            self.lanes.append(lane)
        return self

    def _performer(self, client: httpx.Client) -> Callable[[list[Action]], None]:
        return lambda actions: self._perform(actions, client)

    def lag_s(self) -> float:
        """How far behind its timeline the most late lane is (real seconds)."""
        return max((lane.lag_s for lane in self.lanes if lane.is_alive()), default=0.0)

    def finished(self) -> bool:
        return all(not lane.is_alive() for lane in self.lanes)

    def stop(self) -> None:
        self.stop_event.set()
        for lane in self.lanes:
            lane.join(10)
        self.truth.close()

    def _record(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self.truth.write(json.dumps(doc, separators=(",", ":")) + "\n")
            self.truth.flush()

    def _perform(self, actions: list[Action], client: httpx.Client) -> None:
        changes: list[Action] = []
        for a in actions:
            if a.kind in ("broker_restart", "server_restart"):
                self._changes(changes, client)
                changes = []
                self._fault(a)
            else:
                changes.append(a)
        self._changes(changes, client)

    def _fault(self, a: Action) -> None:
        if a.kind == "broker_restart":
            if self.restart_broker is not None:
                self.restart_broker()
                self._record({"k": "fault", "name": "broker_restart", "at": a.at_ms})
            return
        self.restart_server()
        self._record({"k": "fault", "name": "server_restart", "at": a.at_ms})

    def _changes(self, actions: list[Action], client: httpx.Client) -> None:
        if not actions:
            return
        body = {"changes": [{"counter": a.counter, "action": a.kind, "at": datetime.fromtimestamp(
            a.at_ms / 1000, UTC).isoformat(), **({"official": a.args["official"]} if a.kind == "sign_in" else {})}
            for a in actions]}
        status, text = self._post(client, "/api/v1/sessions/batch", body)
        results = json.loads(text)["results"] if status == 200 else [{"status": status, "error": text}] * len(actions)
        for a, r in zip(actions, results, strict=True):
            ok = r["status"] in (200, 201)
            if not ok:
                self.failed += 1
                log.warning("queue system: %s %s -> %s %s", a.kind, a.counter, r["status"], str(r.get("error"))[:300])
            self._record({"k": "session", "counter": a.counter, "action": a.kind, "official": a.args["official"],
                          "at": a.at_ms, "ok": ok, "status": r["status"]})

    def _post(self, client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[int, str]:
        for attempt in range(RETRIES):
            try:
                res = client.post(path, json=body)
            except httpx.TransportError as exc:
                text, status = str(exc), 0
            else:
                if res.status_code not in (409, 503) or attempt == RETRIES - 1:
                    return res.status_code, res.text
                text, status = res.text, res.status_code
            time.sleep(0.2 * (attempt + 1))
        return status, text
