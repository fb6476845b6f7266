"""Supervisors' review of flagged incidents: flagging at ingest, verdicts, contests, the queue, retention.

Flagged = an accepted incident event (protocol §3.2: complaint, lowest_rating, remote, manual). Its
`reviews` row is the contract with the scoring layer (server/db/models.py: Review); every step of a
review is also kept in `review_steps` and in the hash-chained audit trail.
"""
