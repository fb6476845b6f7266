"""The active scoring policy, stored with its exact text so that any score can be recomputed and checked."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sqlalchemy import Connection, select

from server.db.dialect import insert_for
from server.db.models import SCORING_POLICIES
from server.db.types import utcnow
from server.evaluation.errors import EvaluationError
from server.scoring import BUILTIN, Policy, PolicyError, parse_policy
from server.settings import Settings


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """A policy, the id of its row in scoring_policies, and its exact bytes (what worker processes parse)."""

    policy: Policy
    pk: int
    data: bytes


def policy_bytes(name_or_path: str) -> tuple[bytes, str]:
    """The bytes of a shipped policy (by name) or a policy file (by path), and where they came from."""
    if name_or_path in BUILTIN:
        resource = resources.files("server.scoring").joinpath("policies", f"{name_or_path}.toml")
        return resource.read_bytes(), f"policies/{name_or_path}.toml"
    try:
        return Path(name_or_path).read_bytes(), name_or_path
    except OSError as exc:
        raise EvaluationError("invalid", f"scoring.policy = {name_or_path!r}: cannot read the file "
                                         f"({exc.strerror}); name a shipped policy ({', '.join(BUILTIN)}) "
                                         "or the path of a policy file") from None


@lru_cache(maxsize=32)
def _parsed(data: bytes, source: str) -> Policy:
    return parse_policy(data, source=source)


def parse(data: bytes, source: str) -> Policy:
    """A validated policy (cached by content); PolicyError becomes an EvaluationError naming the fix."""
    try:
        return _parsed(data, source)
    except PolicyError as exc:
        raise EvaluationError("invalid", str(exc)) from None


def active_policy(conn: Connection, *, settings: Settings) -> StoredPolicy:
    """The policy named by settings.scoring.policy, stored (once per distinct content) and validated."""
    data, source = policy_bytes(settings.scoring.policy)
    policy = parse(data, source)
    return StoredPolicy(policy, store_policy(conn, policy=policy, data=data), data)


def store_policy(conn: Connection, *, policy: Policy, data: bytes) -> int:
    """The row id of these exact policy bytes, inserting them the first time."""
    found = conn.execute(select(SCORING_POLICIES.c.id).where(SCORING_POLICIES.c.sha256 == policy.ref.sha256)).scalar()
    if found is not None:
        return int(found)
    stmt = insert_for(conn, SCORING_POLICIES).values(
        policy_id=policy.ref.id, version=policy.ref.version, sha256=policy.ref.sha256, source=policy.source,
        text=data.decode("utf-8"), created_at=utcnow()).on_conflict_do_nothing(index_elements=["sha256"])
    conn.execute(stmt)  # a concurrent first use may have stored it: either way it is there now
    return int(conn.execute(select(SCORING_POLICIES.c.id)
                            .where(SCORING_POLICIES.c.sha256 == policy.ref.sha256)).scalar_one())


def stored_policy(conn: Connection, pk: int) -> StoredPolicy:
    """The policy a closed month was scored with, from its stored text."""
    row = conn.execute(select(SCORING_POLICIES.c.text, SCORING_POLICIES.c.source)
                       .where(SCORING_POLICIES.c.id == pk)).first()
    if row is None:
        raise EvaluationError("not_found", f"no stored policy #{pk}")
    data = row.text.encode("utf-8")
    return StoredPolicy(parse(data, f"stored policy #{pk} ({row.source})"), pk, data)
