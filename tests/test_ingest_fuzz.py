"""The ingest loop survives any payload: every message leaves with a fate, nothing raises."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from motcua.protocol.framing import seal
from server.db.models import EVENTS, QUARANTINE
from server.ingest.messages import Fate, Incoming
from server.ingest.pipeline import Pipeline
from server.ingest.store import IngestRules
from server.settings import Settings
from tests.utils.factories import make_office

RULES = IngestRules.from_settings(Settings(mode="demo"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
envelope_like = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 2, "1"]), "ep": st.integers(-2, 2**70), "seq": st.integers(-2, 2**70),
     "up": st.integers(-5, 2**70), "typ": st.sampled_from(["rating", "incident", "heartbeat", "ack", "x"]),
     "body": json_values},
    optional={"ts": st.integers(-1, 2**60) | st.none(), "extra": json_values},
)


@st.composite
def payloads(draw: st.DrawFn, device_id: str, secret: bytes) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["evt", "hb", "status", "cfg", "evt/x"]))
    topic = draw(st.sampled_from([f"motcua/v1/dev/{device_id}/{kind}", f"motcua/v1/dev/unknown-dev/{kind}",
                                  "motcua/v1/dev/+/evt", "junk"]))
    how = draw(st.sampled_from(["bytes", "json", "signed", "mutated"]))
    if how == "bytes":
        return topic, draw(st.binary(max_size=600))
    doc = draw(envelope_like)
    doc["dev"] = draw(st.sampled_from([device_id, "other-dev", 5]))
    if how == "json":
        return topic, json.dumps(doc).encode()
    signed = seal(secret, json.dumps(doc, separators=(",", ":")).encode()[:-1])
    if how == "signed":
        return topic, signed
    at = draw(st.integers(0, len(signed) - 1))
    return topic, signed[:at] + draw(st.binary(max_size=3)) + signed[at + 1:]


def test_any_payload_gets_a_fate_and_never_crashes_ingest(engine: Engine) -> None:
    office = make_office(engine, counters=1, officials=1)
    dev = office.devices[0]
    pipeline = Pipeline(engine, RULES)
    seen = {"messages": 0}

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(payloads(dev.id, dev.secret), min_size=1, max_size=12), st.integers(1_700_000_000_000, 2**42))
    def check(batch: list[tuple[str, bytes]], received: int) -> None:
        outcome = pipeline.process([Incoming(t, p, received) for t, p in batch])
        assert len(outcome.results) == len(batch)
        for (topic, payload), result in zip(batch, outcome.results, strict=True):
            assert result.fate in set(Fate)
            if result.fate is Fate.QUARANTINED:
                assert result.reason and result.reason != "internal_error"
            if result.ack is not None:
                # Only ever for a message on the device's own `evt` topic that claims to be an event,
                # naming exactly the (ep, seq) it carries: anything else could delete an unstored press.
                doc = json.loads(payload)
                assert topic == dev.topic() and doc["typ"] in ("rating", "incident")
                assert result.ack[:2] == (doc["ep"], doc["seq"])
        seen["messages"] += len(batch)

    check()
    with engine.connect() as conn:
        kept = conn.execute(select(func.coalesce(func.sum(QUARANTINE.c.count), 0))).scalar_one()
        stored = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
    assert seen["messages"] > 0 and kept + stored > 0
