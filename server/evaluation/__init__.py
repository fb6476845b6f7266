"""The database side of the monthly evaluation: SQL aggregation into server.scoring inputs, stored
policies, task results, the month lifecycle (open → provisional → closed → final, amendments),
snapshots, the year roll-up and webhooks. docs/scoring.md §16–20 describe it.

server.scoring stays pure; everything that touches the database is here. Data-layer functions are
keyword-only and know nothing about HTTP or the CLI; both call them.
"""

from server.evaluation.errors import EvaluationError

__all__ = ["EvaluationError"]
