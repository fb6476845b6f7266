"""Conditional GET (RFC 9110 §13.1.2): a strong ETag over the exact body; If-None-Match → 304, no body."""

from __future__ import annotations

import hashlib

from fastapi import Request, Response

CACHE = "private, no-cache"  # scores are personal data: no shared caches; revalidate every time


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def conditional(request: Request, body: bytes, media_type: str, headers: dict[str, str] | None = None) -> Response:
    """The body with its ETag, or 304 Not Modified when the client already holds exactly this body."""
    tag = etag_of(body)
    sent = {"ETag": tag, "Cache-Control": CACHE, **(headers or {})}
    wanted = request.headers.get("if-none-match", "")
    # W/ prefixes are compared weakly, as §13.1.2 says If-None-Match does.
    if any(t.strip().removeprefix("W/") in (tag, "*") for t in wanted.split(",") if t.strip()):
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": CACHE})
    return Response(content=body, media_type=media_type, headers=sent)
