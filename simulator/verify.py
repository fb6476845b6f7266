"""`motcua simulate verify`: the ground truth against what the server stored.

Every genuine event the simulator sent must be stored exactly once, with its exact bytes, its expected
status and official; nothing else may be stored; every forged, broken or replayed message must be in
quarantine for the expected reason. See docs/simulator.md "Ground truth and verify".
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, func, select

from server.clips.storage import LocalStorage
from server.db.models import CLIP_EVENTS, CLIPS, DEVICES, EVENTS, OFFICIALS, QUARANTINE, ClipState

FAILING = ("lost", "wrongly_accepted", "misattributed", "misclassified", "clips_missing", "clips_unlinked")


@dataclass
class Truth:
    events: dict[tuple[str, int, int], dict[str, Any]] = field(default_factory=dict)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    sessions_failed: int = 0
    sessions: int = 0
    clip_refs: list[dict[str, Any]] = field(default_factory=list)  # each kiosk incident: the clip it names
    clips: dict[str, dict[str, Any]] = field(default_factory=dict)  # clip id -> its SHA-256 on the device


def read_truth(out: Path) -> Truth:
    truth = Truth()
    files = sorted(out.glob("truth-*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{out}: no truth-*.jsonl files; run `motcua simulate --scenario ... --out {out}` "
                                "first")
    for path in files:
        with path.open(encoding="utf-8") as f:
            for line in f:
                _take(truth, json.loads(line))
    return truth


def _take(truth: Truth, doc: dict[str, Any]) -> None:
    kind = doc["k"]
    if kind == "evt":
        truth.events[(doc["dev"], doc["ep"], doc["seq"])] = doc
    elif kind == "rej":
        truth.rejections.append(doc)
    elif kind == "dup":
        truth.duplicates += 1
    elif kind == "fault":
        truth.faults[doc["name"]] += 1
    elif kind == "session":
        truth.sessions += 1
        truth.sessions_failed += 0 if doc["ok"] else 1
    elif kind == "clip_ref":
        truth.clip_refs.append(doc)
    elif kind == "clip":
        truth.clips[doc["clip"]] = doc


def _stored(engine: Engine) -> dict[tuple[str, int, int], tuple[str, str | None, str | None, bool, str]]:
    """(device, epoch, seq) -> (status, official code, open quarantine reason, misuse, payload digest)."""
    open_q = (select(QUARANTINE.c.event_id, func.min(QUARANTINE.c.reason).label("reason"))
              .where(QUARANTINE.c.event_id.is_not(None), QUARANTINE.c.resolved_at.is_(None))
              .group_by(QUARANTINE.c.event_id).subquery())
    q = (select(EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.status, OFFICIALS.c.code,
                open_q.c.reason, EVENTS.c.misuse, EVENTS.c.payload)
         .outerjoin(OFFICIALS, OFFICIALS.c.id == EVENTS.c.official_id)
         .outerjoin(open_q, open_q.c.event_id == EVENTS.c.id))
    out = {}
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=5000).execute(q):
            out[(r.device_id, r.epoch, r.seq)] = (str(r.status), r.code, r.reason, bool(r.misuse),
                                                  hashlib.sha256(bytes(r.payload)).hexdigest())
    return out


def _quarantine(engine: Engine) -> tuple[dict[str, set[str]], Counter[str]]:
    by_sha: dict[str, set[str]] = {}
    reasons: Counter[str] = Counter()
    with engine.connect() as conn:
        for r in conn.execute(select(QUARANTINE.c.payload_sha256, QUARANTINE.c.reason)):
            by_sha.setdefault(r.payload_sha256, set()).add(r.reason)
            reasons[r.reason] += 1
    return by_sha, reasons


def _compare_events(truth: Truth, stored: dict[Any, Any], report: dict[str, Any]) -> None:
    examples: list[str] = []
    for key, doc in truth.events.items():
        got = stored.get(key)
        if got is None or got[4] != doc["sha"]:
            report["lost"] += 1
            examples.append(f"lost: {key} {doc['typ']} at {doc['at']}")
            continue
        status, official, reason, misuse, _sha = got
        want = doc["expect"]
        have = status if status == "accepted" else f"quarantined:{reason}"
        if have != want or (doc["official"] is not None and official != doc["official"]):
            report["misattributed"] += 1
            examples.append(f"misattributed: {key} {doc['typ']} expected {want} {doc['official']}, "
                            f"got {have} {official}")
        if doc.get("tag") == "mash":
            report["mash_presses"] += 1
            report["mash_flagged_misuse"] += int(misuse)
    for key in stored.keys() - truth.events.keys():
        report["wrongly_accepted"] += 1
        examples.append(f"wrongly accepted: {key}")
    report["examples"] = examples[:20]


def _compare_rejections(truth: Truth, by_sha: dict[str, set[str]], report: dict[str, Any]) -> None:
    for doc in truth.rejections:
        reasons = by_sha.get(doc["sha"])
        if reasons is None:
            report["unrecorded_rejections"] += 1  # e.g. in flight in a broker crash: nobody re-sends an attack
        elif doc["reason"] not in reasons:
            report["misclassified"] += 1
            report["examples"].append(f"misclassified: {doc['fault']} expected {doc['reason']}, got {sorted(reasons)}")


def _file_sha256(storage: LocalStorage, key: str) -> str | None:
    try:
        size = storage.size(key)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    for block in storage.read(key, 0, size):
        digest.update(block)
    return digest.hexdigest()


def _clip_problem(doc: dict[str, Any] | None, row: Any, storage: LocalStorage | None) -> str | None:
    """Why an expected clip is not stored as the device wrote it, or None when it is."""
    if doc is None or doc["sha"] is None:
        return "never written on the device"
    if row is None:
        return "not on the server"
    if row.state != ClipState.COMPLETE or row.sha256 != doc["sha"] or row.device_id != doc["dev"]:
        return f"on the server as {row.state} from {row.device_id} with SHA-256 {row.sha256[:12]}…"
    if storage is not None and _file_sha256(storage, row.original_key) != doc["sha"]:
        return f"its original {row.original_key} is missing from the clip store or has other bytes"
    return None


def _compare_clips(engine: Engine, truth: Truth, store: str | None, report: dict[str, Any]) -> None:
    """Every clip a kiosk incident named: stored with the device's hash, and linked to that incident."""
    expected: dict[str, list[tuple[str, int, int]]] = {}
    for ref in truth.clip_refs:
        if ref["clip"] is not None:
            expected.setdefault(ref["clip"], []).append((ref["dev"], ref["ep"], ref["seq"]))
    report.update(clips_expected=len(expected), clips_stored=0, clips_missing=0, clips_unlinked=0,
                  incidents_camera_failed=sum(r["camera"] == "failed" for r in truth.clip_refs))
    if not expected:
        return
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(CLIPS.c.id, CLIPS.c.device_id, CLIPS.c.state, CLIPS.c.sha256,
                                                     CLIPS.c.original_key))}
        links = {tuple(r) for r in conn.execute(select(CLIP_EVENTS.c.clip_id, CLIP_EVENTS.c.device_id,
                                                       CLIP_EVENTS.c.epoch, CLIP_EVENTS.c.seq))}
        named = {(r.device_id, r.epoch, r.seq): (r.body or {}).get("clip") for r in conn.execute(
            select(EVENTS.c.device_id, EVENTS.c.epoch, EVENTS.c.seq, EVENTS.c.body).where(EVENTS.c.typ == "incident"))}
    storage = LocalStorage(Path(store)) if store else None
    for clip, refs in sorted(expected.items()):
        problem = _clip_problem(truth.clips.get(clip), rows.get(clip), storage)
        if problem is not None:
            report["clips_missing"] += 1
            report["examples"].append(f"clip missing: {clip} ({refs[0][0]}): {problem}")
            continue
        report["clips_stored"] += 1
        for dev, ep, seq in refs:
            if (clip, dev, ep, seq) not in links or named.get((dev, ep, seq)) != clip:
                report["clips_unlinked"] += 1
                report["examples"].append(f"clip unlinked: {clip} is not linked to incident ({dev}, {ep}, {seq})")


def verify(engine: Engine, out: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The comparison as one JSON-able dict; `ok` when every failing count is 0 and every enabled fault fired."""
    truth = read_truth(out)
    stored = _stored(engine)
    by_sha, reasons = _quarantine(engine)
    with engine.connect() as conn:
        dups = conn.execute(select(func.coalesce(func.sum(DEVICES.c.duplicates), 0))).scalar_one()
        stray = conn.execute(select(func.count()).select_from(EVENTS).where(
            and_(EVENTS.c.official_id.is_not(None), EVENTS.c.status != "accepted"))).scalar_one()
    report: dict[str, Any] = {"sent": len(truth.events) + len(truth.rejections) + truth.duplicates,
              "sent_genuine": len(truth.events),
              "stored": len(stored), "duplicates_suppressed": int(dups), "duplicates_injected": truth.duplicates,
              "quarantined": dict(sorted(reasons.items())), "lost": 0, "wrongly_accepted": 0, "misattributed": 0,
              "misclassified": 0, "unrecorded_rejections": 0, "mash_presses": 0, "mash_flagged_misuse": 0,
              "sessions_reported": truth.sessions, "sessions_refused": truth.sessions_failed,
              "quarantined_with_official": int(stray), "faults_fired": dict(sorted(truth.faults.items()))}
    _compare_events(truth, stored, report)
    _compare_rejections(truth, by_sha, report)
    _compare_clips(engine, truth, (manifest or {}).get("clip_store"), report)
    report["examples"] = report["examples"][:30]
    enabled = (manifest or {}).get("faults_enabled", [])
    if not (manifest or {}).get("broker_restartable", True):
        enabled = [f for f in enabled if f != "broker_restart"]
    report["faults_not_fired"] = sorted(set(enabled) - set(report["faults_fired"]))
    report["ok"] = all(report[k] == 0 for k in FAILING) and not report["faults_not_fired"]
    return report


def table(report: dict[str, Any]) -> str:
    """The report as a plain-text table for people; the JSON line follows it."""
    rows = [("sent (genuine events + injected messages)", f"{report['sent']:,}"),
            ("genuine events sent", f"{report['sent_genuine']:,}"), ("stored", f"{report['stored']:,}"),
            ("duplicates suppressed (injected)",
             f"{report['duplicates_suppressed']:,} ({report['duplicates_injected']})")]
    rows += [(f"quarantined: {k}", f"{v:,}") for k, v in report["quarantined"].items()]
    rows += [("clips expected (named by kiosk incidents)", f"{report['clips_expected']:,}"),
             ("clips stored with the device's hash", f"{report['clips_stored']:,}"),
             ("kiosk incidents without clip (camera failed)", f"{report['incidents_camera_failed']:,}")]
    rows += [(name.replace("_", " "), f"{report[name]:,}" + ("  <-- must be 0" if report[name] else ""))
             for name in FAILING]
    rows += [("unrecorded rejections", str(report["unrecorded_rejections"])),
             ("mashed presses flagged misuse", f"{report['mash_flagged_misuse']} of {report['mash_presses']}"),
             ("queue-system session reports refused", f"{report['sessions_refused']} of {report['sessions_reported']}")]
    rows += [(f"fault fired: {k}", str(v)) for k, v in report["faults_fired"].items()]
    rows.append(("faults enabled but never fired", ", ".join(report["faults_not_fired"]) or "none"))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"  {e}" for e in report.get("examples", [])]
    lines.append("VERIFY " + ("PASSED" if report["ok"] else "FAILED"))
    return "\n".join(lines)
