"""Same inputs + same policy bytes → the same result, byte for byte; results hash to a digest."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from decimal import Decimal

import pytest

from server.scoring import (
    Adjustment,
    Incident,
    InputError,
    RatingCounts,
    TaskItem,
    canonical_json,
    result_digest,
    score_period,
)
from tests.scoring.factories import by_id, official, policy, with_total

D = Decimal


def _officials() -> list:
    rich = official(
        "CB-1",
        ratings=(RatingCounts("ho_tich", 3, (1, 3, 16)), RatingCounts("dat_dai", 5, (0, 1, 2, 3, 4))),
        incidents=(Incident("9", "complaint", "minor"), Incident("12", "manual", "moderate")),
        dismissed_incidents=1,
        tasks=(
            TaskItem("T2", D(2), delays=1),
            TaskItem("T1", D(3)),
            TaskItem("T3", D(1), quality_failures=2),
        ),
        general={"pham_chat": D("8.5"), "trach_nhiem": D(4), "doi_moi": D(7)},
    )
    return [rich, with_total("CB-2", "93"), with_total("CB-3", "80", group="H")]


def _reversed(o):  # type: ignore[no-untyped-def]
    """The same official with every list in the opposite order."""
    return replace(
        o,
        ratings=tuple(reversed(o.ratings)),
        incidents=tuple(reversed(o.incidents)),
        tasks=tuple(reversed(o.tasks)),
    )


def test_same_inputs_same_digest_whatever_the_order() -> None:
    first = by_id(score_period(policy(), _officials(), period="2026-03"))
    again = by_id(score_period(policy(), [_reversed(o) for o in reversed(_officials())], period="2026-03"))
    assert first == again
    assert {k: result_digest(r) for k, r in first.items()} == {k: result_digest(r) for k, r in again.items()}


def test_the_digest_is_the_sha256_of_the_canonical_json() -> None:
    [r, *_] = score_period(policy(), _officials(), period="2026-03")
    data = canonical_json(r)
    assert result_digest(r) == hashlib.sha256(data).hexdigest()
    plain = json.loads(data)
    assert list(plain) == sorted(plain)  # keys sorted
    assert plain["total"] == str(r.total) and plain["policy"]["sha256"] == policy().ref.sha256
    assert data.startswith(b'{"agency":"A","components":{"adjustments":"0.00","general":')  # no spaces
    assert b"\\u" not in data and "Phẩm chất".encode() in data  # raw UTF-8, never \u escapes


def test_any_change_of_input_or_policy_bytes_changes_the_digest() -> None:
    base = result_digest(score_period(policy(), _officials(), period="2026-03")[0])
    changed = _officials()
    changed[0] = replace(changed[0], bonuses=(Adjustment("B", D(1)),))  # capped to 0 points, still listed
    assert result_digest(score_period(policy(), changed, period="2026-03")[0]) != base
    assert result_digest(score_period(policy(), _officials(), period="2026-04")[0]) != base
    commented = policy("nd335", ('title = "', '# reviewed\ntitle = "'))
    other = score_period(commented, _officials(), period="2026-03")[0]
    assert (
        result_digest(other) != base
        and other.total == score_period(policy(), _officials(), period="p")[0].total
    )


def test_an_official_twice_in_one_call_is_refused() -> None:
    with pytest.raises(InputError, match="given twice"):
        score_period(policy(), [with_total("X", "80"), with_total("X", "81")], period="p")


def test_a_complete_month_is_not_provisional() -> None:
    # 10 valid ratings, every criterion entered, tasks present, nothing pending
    [r] = score_period(policy(), [with_total("X", "80")], period="p")
    assert not r.provisional and r.provisional_reasons == ()
