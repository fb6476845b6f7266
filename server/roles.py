"""Roles of console users and the scopes they hold: least privilege, one table.

A scope is the unit of permission (server/api/auth.py checks them); a role is a named set of scopes.
Unit scoping is separate: a scoped role sees only the units in its `user_units` rows.
"""

from __future__ import annotations

# What each scope allows. Tokens (machine clients) may hold the first group; the rest come with roles.
TOKEN_SCOPES = {
    "sessions:write": "sign officials in and out of counters (queue system, kiosk gateway)",
    "read": "read units, counters, officials, events, ratings and quarantine",
    "admin": "provision and revoke devices, resolve quarantine, manage the registry and users",
    "review:read": "read flagged incidents, their verdicts and history",
    "clips:view": "play and download evidence clips (every access is in the audit trail)",
    "audit:read": "read and export the audit trail",
    "read:scores": "read monthly evaluation scores and their explanations (HR systems), within the token's units",
    "tasks:write": "import task results and enter the unit head's points, within the token's units",
}
ROLE_ONLY_SCOPES = {
    "review:decide": "confirm or dismiss flagged incidents; decide an official's contest",
    "events:attribute": "assign unattributed events to the official who served",
    "own:read": "an official's own ratings, incidents and verdicts",
    "review:contest": "contest a confirmed verdict on one's own incident while the month is open",
}
ALL_SCOPES = {**TOKEN_SCOPES, **ROLE_ONLY_SCOPES}

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin"}),
    # Decides verdicts and watches clips for the units assigned to them, nothing about users or devices.
    "supervisor": frozenset({"read", "review:read", "review:decide", "clips:view", "events:attribute"}),
    # Reads the unit and its verdicts and enters task marks; clips are for the reviewers (privacy).
    "unit_head": frozenset({"read", "review:read", "tasks:write"}),
    # Only their own record: no unit-wide reading at all.
    "official": frozenset({"own:read", "review:contest"}),
    # Read-only across every unit (an inspector); kept from before roles existed.
    "viewer": frozenset({"read"}),
}
ROLES = tuple(ROLE_SCOPES)
UNSCOPED_ROLES = frozenset({"admin", "viewer"})  # see every unit
UNIT_ROLES = frozenset({"supervisor", "unit_head"})  # see the units of their user_units rows
# Holding a scope grants these too: an admin can do everything a role can.
IMPLIED = {"admin": frozenset(set(ALL_SCOPES) - {"own:read", "review:contest"})}
