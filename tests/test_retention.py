"""Clip retention on both databases: dismissed clips go after N days, confirmed ones after the month closes,
nothing while a linked incident is pending or contested; media deleted, record kept, every purge audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, update

from server.api.app import create_app
from server.clips.service import ClipService
from server.db.models import AUDIT, CLIP_EVENTS, CLIPS, EVENTS, REVIEWS, ClipState, DeviceKind, RenditionState
from server.db.types import utcnow
from server.review.months import contest_closes_at, period_of
from server.review.retention import RetentionTask, purge_due
from server.settings import Settings
from tests.utils.console import complaint, make_user, review_of, run_cli, sign_in
from tests.utils.factories import Office, make_office
from tests.utils.factories import sign_in as sign_in_official

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(mode="demo", database_url=db_url, data_dir=tmp_path,
                    review={"dismissed_clip_days": 30}, scoring={"review_days": 10})  # type: ignore[arg-type]


@pytest.fixture
def office(engine: Engine) -> Office:
    made = make_office(engine, counters=1, officials=1, code="PR", kind=DeviceKind.KIOSK)
    sign_in_official(engine, made.counters[0], made.officials[0], NOW - timedelta(hours=5))
    return made


def _clip(engine: Engine, clips: ClipService, office: Office, tmp: Path, n: int) -> str:
    clip_id = f"{n:032x}"
    blob = tmp / "blob.bin"
    blob.write_bytes(b"\x01" * 100)
    keys = {"rendition_key": f"renditions/{clip_id}.mp4", "thumbnail_key": f"thumbnails/{clip_id}.jpg",
            "original_key": f"originals/{clip_id}.mkv"}
    for key in keys.values():
        clips.storage.put_file(key, blob, "application/octet-stream")
    with engine.begin() as conn:
        conn.execute(insert(CLIPS).values(
            id=clip_id, device_id=office.devices[0].id, counter_id=office.counters[0], state=ClipState.COMPLETE,
            manifest=b"{}", sha256=f"{n:064x}", size=100, received=100, epoch=1, frames=1, width=1, height=1,
            privacy="none", rendition_state=RenditionState.DONE, duration_ms=1000, created_at=utcnow(), **keys))
    return clip_id


def _decide(engine: Engine, event_id: int, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(REVIEWS).where(REVIEWS.c.event_id == event_id).values(
            status=status, decided_by="user:gs", decided_at=NOW, reason="decided", severity=(
                "minor" if status in ("confirmed", "contested") else None)))


@pytest.fixture
def clips(settings: Settings, engine: Engine) -> ClipService:
    return ClipService.from_settings(settings, engine, with_worker=False)


def _scenario(engine: Engine, settings: Settings, clips: ClipService, office: Office, tmp: Path) -> dict[str, str]:
    """One clip per rule, each named by what should happen to it."""
    dev, out = office.devices[0], {}
    for i, (name, statuses) in enumerate([("dismissed", ["dismissed"]), ("confirmed", ["confirmed"]),
                                          ("pending", ["pending"]), ("contested", ["contested"]),
                                          ("dismissed_and_pending", ["dismissed", "pending"]),
                                          ("listed_in_manifest", ["dismissed"])]):
        clip = _clip(engine, clips, office, tmp, i + 1)
        for k, status in enumerate(statuses):
            named = clip if name != "listed_in_manifest" else None
            event_id = complaint(engine, settings, dev, at=NOW - timedelta(hours=4) + timedelta(minutes=i * 10 + k),
                                 clip=named)
            if named is None:  # the clip's signed manifest names the incident; the incident does not name it
                with engine.begin() as conn:
                    ev = conn.execute(select(EVENTS.c.epoch, EVENTS.c.seq).where(EVENTS.c.id == event_id)).one()
                    conn.execute(insert(CLIP_EVENTS).values(clip_id=clip, device_id=dev.id, epoch=ev.epoch,
                                                            seq=ev.seq))
            if status != "pending":
                _decide(engine, event_id, status)
        out[name] = clip
    return out


def _purged(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(select(CLIPS.c.id).where(CLIPS.c.purged_at.is_not(None))))


def test_what_is_purged_when(engine: Engine, settings: Settings, clips: ClipService, office: Office,
                             tmp_path: Path) -> None:
    made = _scenario(engine, settings, clips, office, tmp_path)
    soon = purge_due(engine, clips.storage, settings=settings, actor="test", now=NOW + timedelta(days=29))
    assert soon == [] and _purged(engine) == set()
    later = NOW + timedelta(days=31)
    with engine.connect() as conn:
        closes = contest_closes_at(conn, period=period_of(NOW - timedelta(hours=4), settings), settings=settings)
    dry = purge_due(engine, clips.storage, settings=settings, actor="test", dry_run=True, now=later)
    expected = {made["dismissed"], made["listed_in_manifest"]} | ({made["confirmed"]} if later >= closes else set())
    assert {i.clip_id for i in dry} == expected and _purged(engine) == set()  # a dry run deletes nothing
    done = purge_due(engine, clips.storage, settings=settings, actor="test", now=later)
    assert {i.clip_id for i in done} == expected == _purged(engine)
    after_close = purge_due(engine, clips.storage, settings=settings, actor="test", now=closes + timedelta(hours=1))
    assert _purged(engine) == expected | {made["confirmed"]}  # confirmed: once the month has closed
    assert {i.clip_id for i in after_close} <= {made["confirmed"]}
    kept = {made["pending"], made["contested"], made["dismissed_and_pending"]}
    assert not kept & _purged(engine)
    gone = made["dismissed"]
    with pytest.raises(FileNotFoundError):
        clips.storage.size(f"renditions/{gone}.mp4")
    assert clips.storage.size(f"renditions/{made['pending']}.mp4") == 100
    with engine.connect() as conn:
        entry = conn.execute(select(AUDIT.c.actor, AUDIT.c.detail).where(AUDIT.c.action == "clip.purge",
                                                                          AUDIT.c.target_id == gone)).one()
        row = conn.execute(select(CLIPS.c.sha256, CLIPS.c.purge_reason).where(CLIPS.c.id == gone)).one()
    assert entry.actor == "test" and entry.detail["sha256"] == row.sha256 and "dismissed" in row.purge_reason
    assert len(entry.detail["deleted"]) == 3


def test_a_purged_clip_answers_gone_and_the_page_says_why(engine: Engine, settings: Settings, clips: ClipService,
                                                          office: Office, tmp_path: Path) -> None:
    clip = _clip(engine, clips, office, tmp_path, 9)
    event_id = complaint(engine, settings, office.devices[0], at=NOW - timedelta(hours=1), clip=clip)
    _decide(engine, event_id, "dismissed")
    purge_due(engine, clips.storage, settings=settings, actor="test", now=NOW + timedelta(days=40))
    app = create_app(settings, engine, clip_service=clips)
    make_user(engine, "gs", "supervisor", units=("PR",))
    gs = sign_in(app, "gs")
    res = gs.client.get(f"/api/v1/clips/{clip}/video")
    assert res.status_code == 410 and res.json()["error"]["code"] == "purged"
    page = gs.client.get(f"/reviews/{review_of(engine, event_id).id}").text
    assert "đã bị xóa theo quy định thời hạn lưu" in page and "<video" not in page


def test_the_server_task_and_the_command_purge(engine: Engine, settings: Settings, clips: ClipService,
                                               office: Office, tmp_path: Path, db_url: str) -> None:
    clip = _clip(engine, clips, office, tmp_path, 7)
    event_id = complaint(engine, settings, office.devices[0], at=NOW - timedelta(hours=1), clip=clip)
    _decide(engine, event_id, "dismissed")
    with engine.begin() as conn:  # dismissed long ago
        conn.execute(update(REVIEWS).values(decided_at=NOW - timedelta(days=45)))
    env = {"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": "x" * 40, "MOTCUA_DATABASE_URL": db_url,
           "MOTCUA_DATA_DIR": str(tmp_path), "MOTCUA_REVIEW__DISMISSED_CLIP_DAYS": "30"}
    listed = run_cli("clips", "purge", "--dry-run", env=env)
    assert listed.exit_code == 0 and clip in listed.stdout and "would delete the media of 1 clip" in listed.stdout
    assert _purged(engine) == set()
    assert RetentionTask(engine, clips.storage, settings).run_once() == 1
    assert _purged(engine) == {clip}
    again = run_cli("clips", "purge", env=env)
    assert again.exit_code == 0 and "deleted the media of 0 clip" in again.stdout


def test_each_view_and_download_is_logged_once(engine: Engine, settings: Settings, clips: ClipService,
                                               office: Office, tmp_path: Path) -> None:
    clip = _clip(engine, clips, office, tmp_path, 5)
    app = create_app(settings, engine, clip_service=clips)
    make_user(engine, "gs", "supervisor", units=("PR",))
    gs = sign_in(app, "gs")
    assert gs.client.get(f"/api/v1/clips/{clip}/video", headers={"Range": "bytes=0-"}).status_code == 206
    assert gs.client.get(f"/api/v1/clips/{clip}/video", headers={"Range": "bytes=50-"}).status_code == 206
    assert gs.client.get(f"/api/v1/clips/{clip}/thumbnail").status_code == 200
    got = gs.client.get(f"/api/v1/clips/{clip}/video?download=1")
    assert got.status_code == 200 and got.headers["content-disposition"].startswith("attachment")
    with engine.connect() as conn:
        trail = [(r.actor, r.action, r.detail["media"]) for r in conn.execute(
            select(AUDIT.c.actor, AUDIT.c.action, AUDIT.c.detail).where(AUDIT.c.target_id == clip)
            .order_by(AUDIT.c.id))]
    assert trail == [("user:gs", "clip.view", "video"), ("user:gs", "clip.view", "thumbnail"),
                     ("user:gs", "clip.download", "video")]  # the continuation range is part of the first view


def test_the_player_is_shown_only_to_who_may_watch(engine: Engine, settings: Settings, clips: ClipService,
                                                   office: Office, tmp_path: Path) -> None:
    clip = _clip(engine, clips, office, tmp_path, 6)
    event_id = complaint(engine, settings, office.devices[0], at=NOW - timedelta(hours=1), clip=clip)
    rid = review_of(engine, event_id).id
    app = create_app(settings, engine, clip_service=clips)
    for name, role, extra in (("gs", "supervisor", {"units": ("PR",)}), ("head", "unit_head", {"units": ("PR",)}),
                              ("cb", "official", {"official": "PR-CB001"})):
        make_user(engine, name, role, **extra)  # type: ignore[arg-type]
    gs, head, cb = (sign_in(app, n) for n in ("gs", "head", "cb"))
    assert "<video" in gs.client.get(f"/reviews/{rid}").text
    assert "<video" not in head.client.get(f"/reviews/{rid}").text  # unit heads read verdicts, not clips
    assert "<video" not in cb.client.get(f"/reviews/{rid}").text  # nothing decided against the official yet
    gs.form(f"/reviews/{rid}/confirm", {"severity": "minor", "reason": "late and curt with the citizen"})
    assert "<video" in cb.client.get(f"/reviews/{rid}").text  # now the evidence against them is theirs to see
    assert cb.client.get(f"/api/v1/clips/{clip}/video").status_code == 200
