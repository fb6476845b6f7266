"""The one exception of the evaluation layer: a kind the API maps to a status, and a message saying what to do."""

from __future__ import annotations

from typing import Any

KINDS = ("invalid", "not_found", "conflict", "forbidden")


class EvaluationError(Exception):
    """`kind` is one of KINDS; `details` lists row- or official-level problems when there are several."""

    def __init__(self, kind: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        assert kind in KINDS, kind
        super().__init__(message)
        self.kind, self.details = kind, details or []
