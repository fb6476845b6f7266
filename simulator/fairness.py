"""The fairness report: how often a monthly grade differs from the grade the official's true quality implies.

Method (docs/simulator.md "Fairness"): a seeded population drawn from the scenario's model (latent
quality, services and their difficulty, rating noise). Each official is scored with the real, pure
scoring engine twice — our policy (shrinkage to the group mean, difficulty adjustment) and the same
policy made naive (the raw mean of the month's ratings) — and both grades are compared with the
**true grade**: the band of the total the official would get if the satisfaction criterion held their
true satisfaction value (the mean rating value an unlimited number of citizens would give them at a
service of average difficulty). The other points are the same for all three, and set so that each
official stands within the satisfaction criterion's reach of the top band boundary: the only officials
whose grade the ratings can change. The HTXS quota is left out (it depends on colleagues, not on the
official's own numbers).
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path
from statistics import NormalDist
from typing import Any

from server.scoring import OfficialPeriod, Policy, RatingCounts, TaskItem, band, load_policy, score_period
from simulator.behaviour import expected_centre, rate
from simulator.scenario import Scenario

BINS = ((1, 5), (6, 10), (11, 30), (31, 100), (101, 300))
GROUP_SIZE = 20  # officials per similar-duty group (one district's one-stop staff): group means come from them
SATISFACTION = "thai_do_phuc_vu"


def naive(policy: Policy) -> Policy:
    """The same policy, satisfaction scored as the plain mean of the month's ratings."""
    sat = policy.spec.satisfaction
    plain = sat.model_copy(update={"prior_weight": Decimal(0), "min_ratings": 0, "below_min": "shrunk",
                                   "difficulty": sat.difficulty.model_copy(update={"enabled": False})})
    return Policy(policy.spec.model_copy(update={"satisfaction": plain}), policy.ref, policy.source + " (naive)")


def true_value(quality: float, levels: int, noise: float, points: list[Decimal]) -> float:
    """Mean rating value (0..1) of unlimited citizens at a service of no difficulty (exact, no sampling)."""
    centre = expected_centre(quality, 0.0, levels)
    if noise <= 0:
        probs = [1.0 if k == round(centre) else 0.0 for k in range(1, levels + 1)]
    else:
        d = NormalDist(centre, noise)
        cuts = [0.0] + [d.cdf(k + 0.5) for k in range(1, levels)] + [1.0]
        probs = [cuts[i + 1] - cuts[i] for i in range(levels)]
    top = float(points[-1])
    return sum(p * float(points[i]) / top for i, p in enumerate(probs))


def _criterion_max(policy: Policy) -> Decimal:
    return next(c.max for c in policy.spec.general.criteria if c.id == SATISFACTION)


def _population(sc: Scenario, per_bin: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    people = []
    for low, high in BINS:
        for _ in range(per_bin):
            svc = rng.choices(sc.services, weights=[s.weight for s in sc.services])[0]
            q = min(0.99, max(0.05, rng.gauss(sc.officials.quality_mean, sc.officials.quality_sd)))
            people.append({"n": rng.randint(low, high), "quality": q, "service": svc.code,
                           "difficulty": svc.difficulty, "slack": Decimal(rng.randint(500, 1000)) / 100})
    rng.shuffle(people)
    return people


def _period(i: int, p: dict[str, Any], counts: list[int], policy: Policy) -> OfficialPeriod:
    entered = {c.id: Decimal(c.max) for c in policy.spec.general.criteria if c.source == "entered"}
    # Take `slack` (5..10) points off the entered criteria: the official's total before satisfaction is
    # then within one satisfaction criterion (5 points) of the 90-point boundary.
    first = next(iter(entered))
    entered[first] -= p["slack"]
    return OfficialPeriod(official_id=f"O{i:05d}", agency="sim", group=f"G{i // GROUP_SIZE}",
                          ratings=[RatingCounts(p["service"], len(counts), counts)], general=entered,
                          tasks=[TaskItem(id="t1", points=Decimal(70))])


def _grade(policy: Policy, total: Decimal) -> str:
    return policy.spec.grades[band(policy.spec, total)].code


def fairness_report(sc: Scenario, *, per_bin: int = 600, seed: int = 1) -> dict[str, Any]:
    """Misgrade rates (ours vs naive) by ratings per official per month; JSON-able."""
    policy = load_policy(sc.policy)
    plain = naive(policy)
    levels, noise = sc.scenario.levels, sc.citizens.noise
    points = [Decimal(x) for x in policy.spec.satisfaction.level_points[levels]]
    rng = random.Random(seed + 1)
    people = _population(sc, per_bin, seed)
    periods = []
    for i, p in enumerate(people):
        counts = [0] * levels
        for _ in range(p["n"]):
            counts[rate(rng, quality=p["quality"], difficulty=p["difficulty"], levels=levels, noise=noise) - 1] += 1
        periods.append(_period(i, p, counts, policy))
    ours = score_period(policy, periods, period="sim")
    theirs = score_period(plain, periods, period="sim")
    top = _criterion_max(policy)
    bins = {f"{lo}-{hi}": {"officials": 0, "ours_wrong": 0, "naive_wrong": 0, "ours_err": 0.0, "naive_err": 0.0}
            for lo, hi in BINS}
    for p, o, n in zip(people, ours, theirs, strict=True):
        truth = true_value(p["quality"], levels, noise, points)
        base = o.total - o.criteria[SATISFACTION]
        true_grade = _grade(policy, base + (top * Decimal(truth)).quantize(Decimal("0.01")))
        key = next(f"{lo}-{hi}" for lo, hi in BINS if lo <= p["n"] <= hi)
        b = bins[key]
        b["officials"] += 1
        b["ours_wrong"] += int(o.grade_before_caps != true_grade)
        b["naive_wrong"] += int(n.grade_before_caps != true_grade)
        b["ours_err"] += abs(float(o.criteria[SATISFACTION] / top) - truth)
        b["naive_err"] += abs(float(n.criteria[SATISFACTION] / top) - truth)
    for b in bins.values():
        k = max(1, b["officials"])
        b["ours_misgrade"] = round(b.pop("ours_wrong") / k, 4)
        b["naive_misgrade"] = round(b.pop("naive_wrong") / k, 4)
        b["ours_mae"] = round(b.pop("ours_err") / k, 4)
        b["naive_mae"] = round(b.pop("naive_err") / k, 4)
    return {"scenario": sc.name, "policy": policy.ref.id, "seed": seed, "per_bin": per_bin, "levels": levels,
            "noise": noise, "bins": bins}


def render_table(report: dict[str, Any]) -> str:
    head = (f"fairness: policy {report['policy']}, scenario {report['scenario']}, {report['per_bin']} officials "
            f"per bin, seed {report['seed']}")
    rows = [f"{'ratings/month':<14}{'officials':>10}{'ours misgraded':>16}{'naive misgraded':>17}"
            f"{'ours MAE':>10}{'naive MAE':>11}"]
    for key, b in report["bins"].items():
        rows.append(f"{key:<14}{b['officials']:>10}{b['ours_misgrade']:>16.1%}{b['naive_misgrade']:>17.1%}"
                    f"{b['ours_mae']:>10.3f}{b['naive_mae']:>11.3f}")
    return "\n".join([head, *rows])


def write_chart(report: dict[str, Any], path: Path) -> None:
    """Grouped bars: share of officials misgraded per ratings bin, ours vs naive."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(report["bins"])
    ours = [report["bins"][k]["ours_misgrade"] * 100 for k in keys]
    plain = [report["bins"][k]["naive_misgrade"] * 100 for k in keys]
    x = range(len(keys))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar([i - 0.2 for i in x], plain, 0.4, label="naive average", color="#c0504d")
    ax.bar([i + 0.2 for i in x], ours, 0.4, label=f"our score ({report['policy']})", color="#4f81bd")
    ax.set_xticks(list(x), keys)
    ax.set_xlabel("ratings per official per month")
    ax.set_ylabel("officials misgraded (%)")
    ax.set_title("Monthly grade vs the grade the true quality implies")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
