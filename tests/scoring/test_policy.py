"""Policy files: the shipped ones load, are identified by their bytes, and bad ones are refused clearly."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from server.scoring import BUILTIN, PolicyError, load_policy, parse_policy
from tests.scoring.factories import POLICIES, policy


@pytest.mark.parametrize("name", BUILTIN)
def test_shipped_policy_is_identified_by_the_sha256_of_its_bytes(name: str) -> None:
    loaded = load_policy(name)
    data = (POLICIES / f"{name}.toml").read_bytes()
    assert loaded.ref.id == name
    assert loaded.ref.sha256 == hashlib.sha256(data).hexdigest()
    assert load_policy(POLICIES / f"{name}.toml").ref == loaded.ref  # by path: same identity


def test_shipped_policies_hold_the_regulations_figures() -> None:
    nd = load_policy("nd335").spec
    assert (nd.general.points, nd.tasks.points) == (30, 70)
    assert [(g.code, g.min) for g in nd.grades] == [("HTXS", 90), ("HTT", 70), ("HTNV", 50), ("KHTNV", None)]
    assert nd.discipline.veto_from == "khien_trach" and nd.discipline.veto_grade == "KHTNV"
    assert nd.caps[0].ratio == Decimal("0.2") and nd.caps[0].reading == "literal"
    assert nd.caps[0].scopes == ["agency", "group"]
    hn = load_policy("hanoi-3814").spec
    assert (hn.general.points, hn.tasks.points, hn.adjustments.bonus_cap) == (20, 70, 10)
    assert [(g.code, g.min) for g in hn.grades] == [("A", 90), ("B", 70), ("C", 50), ("D", None)]
    assert (hn.caps[0].ratio, hn.caps[0].outstanding_ratio) == (Decimal("0.3"), Decimal("0.4"))


def test_a_comment_changes_the_hash_but_not_the_rules() -> None:
    edited = policy("nd335", ('title = "', '# a comment\ntitle = "'))
    assert edited.ref.sha256 != load_policy("nd335").ref.sha256
    assert edited.spec == load_policy("nd335").spec


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (
            'id = "doi_moi"\nlabel = "Năng lực đổi mới sáng tạo, dám nghĩ, dám làm"\nmax = 10',
            'id = "doi_moi"\nlabel = "x"\nmax = 9',
            "general.points",
            "add up to 29",
        ),
        ("min = 90", "min = 89.995", "grades[0].min", "multiple of 0.01"),
        ("min = 50", "min = 75", "grades[2].min", "best to worst"),
        ('basis_from = "HTT"', 'basis_from = "XX"', "caps[0].basis_from", "grade code"),
        ('veto_from = "khien_trach"', 'veto_from = "phat_tien"', "discipline.veto_from", "not in"),
        ("3 = [0, 1, 2]", "3 = [0, 2, 1]", "satisfaction.level_points.3", "must not decrease"),
        ("3 = [0, 1, 2]", "3 = [0, 1]", "satisfaction.level_points.3", "needs 3 points"),
        ('criterion = "thai_do_phuc_vu"', 'criterion = "nobody"', "incidents.criterion", "not a general"),
        ("prior_weight = 10 ", "prior_weight = -1 ", "satisfaction.prior_weight", "greater than or equal"),
        ("decimals = 2", "decimals = 2\nbonus = 1", "bonus", "Extra inputs are not permitted"),
        ('reading = "literal"', 'reading = "generous"', "caps[0].reading", "literal"),
    ],
)
def test_a_bad_policy_names_the_file_the_key_and_what_to_do(
    old: str, new: str, key: str, problem: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        policy("nd335", (old, new))
    message = str(caught.value)
    assert caught.value.key == key
    assert message.startswith("test variant of nd335.toml: [" + key + "]")
    assert problem in message
    assert "correct the file" in message and "docs/scoring.md" in message


def test_invalid_toml_and_missing_files_are_policy_errors() -> None:
    with pytest.raises(PolicyError, match=r"^x\.toml: \[-\] not valid TOML"):
        parse_policy(b"id = ", source="x.toml")
    with pytest.raises(PolicyError, match="not UTF-8"):
        parse_policy(b"id = '\xff'", source="x.toml")
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy("/nonexistent/policy.toml")
