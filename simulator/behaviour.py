"""How citizens rate: the one rating model shared by the simulator and the fairness report."""

from __future__ import annotations

import random


def expected_centre(quality: float, difficulty: float, levels: int) -> float:
    """The level a citizen's rating centres on: the official's quality, less the service's difficulty."""
    effective = min(1.0, max(0.0, quality - difficulty))
    return 1 + (levels - 1) * effective


def rate(rng: random.Random, *, quality: float, difficulty: float, levels: int, noise: float) -> int:
    """One rating on a `levels` scale (1 = worst): Gaussian around the centre, rounded and clipped."""
    value = round(rng.gauss(expected_centre(quality, difficulty, levels), noise))
    return max(1, min(levels, value))


def level_probabilities(*, quality: float, difficulty: float, levels: int, noise: float,
                        samples: int = 20000, seed: int = 0) -> list[float]:
    """P(rating = level) by Monte Carlo: what an infinite number of citizens would give."""
    rng = random.Random(seed)
    counts = [0] * levels
    for _ in range(samples):
        counts[rate(rng, quality=quality, difficulty=difficulty, levels=levels, noise=noise) - 1] += 1
    return [c / samples for c in counts]
