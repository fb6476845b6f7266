"""Kiosk counters in the simulator keep evidence clips through the real kiosk clip path (synthetic camera,
recorder, writer, signed manifest, uploader) into the run's real upload endpoint; verify checks that
every clip an incident named is stored with the device's hash and linked to that incident."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.db.models import CLIPS, EVENTS
from simulator.scenario import ScenarioError, parse_scenario
from simulator.world import build_world
from tests.utils import db

# Four kiosks, two compressed office hours, officials whom citizens rate low and always complain about;
# one camera breaks for the rest of the shift (seed 2: after four lowest ratings or complaints there).
SCENARIO: dict[str, Any] = {
    "scenario": {"name": "kiosk-clips", "seed": 2, "compression": 1500, "warmup_s": 4, "drain_s": 30},
    "office": {"units": 1, "counters_per_unit": 4, "officials_per_unit": 4, "shifts": ["07:30-09:30"]},
    "services": [{"code": "ho-tich", "name": "Tư pháp - Hộ tịch", "service_minutes": [3, 6]}],
    "devices": {"kiosk_share": 1.0, "unsynced_share": 0.0, "heartbeat_s": 2, "resend_after_s": 2},
    "citizens": {"per_counter_hour": {"7": 20, "8": 20, "9": 20}, "complaint_share": 1.0, "noise": 1.5},
    "officials": {"quality_mean": 0.3, "quality_sd": 0.1},
    "faults": {"camera_failure": {"enabled": True, "minutes": [150, 150]}},
}


def test_a_camera_fault_without_kiosk_cameras_is_refused_with_the_fix() -> None:
    for devices, kiosk in (({"kiosk_share": 0.0}, {}), ({"kiosk_share": 1.0}, {"camera": False})):
        with pytest.raises(ScenarioError, match=r"camera_failure needs kiosks with cameras: set devices.kiosk_share"):
            parse_scenario({**SCENARIO, "devices": devices, "kiosk": kiosk}, source="x.toml")
    with pytest.raises(ScenarioError, match=r"x.toml: kiosk.post_roll_s"):
        parse_scenario({**SCENARIO, "kiosk": {"post_roll_s": 0.5}}, source="x.toml")
    unlucky = parse_scenario({**SCENARIO, "devices": {"kiosk_share": 0.001}}, source="x.toml")  # no kiosk drawn
    with pytest.raises(ScenarioError, match=r"no counter got a kiosk: raise devices.kiosk_share"):
        build_world(unlucky)


@pytest.fixture(scope="module")
def kiosk_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    from motcua.localbroker import mosquitto_binary

    if mosquitto_binary() is None:
        from tests.utils.services import unavailable

        unavailable("the mosquitto binary is not installed")
    from simulator.run import RunOptions, run_simulation

    out = tmp_path_factory.mktemp("kiosk-clips")
    manifest = run_simulation(parse_scenario(SCENARIO, source="kiosk clips (test)"), RunOptions(out=out, quiet=True))
    yield manifest, out


@pytest.mark.slow
@pytest.mark.broker
def test_kiosk_incidents_name_clips_that_are_stored_with_the_device_hash_and_linked(
        kiosk_run: tuple[dict[str, Any], Path]) -> None:
    import av

    from simulator.verify import verify

    manifest, out = kiosk_run
    engine = db.engine_for(manifest["database_url"])
    report = verify(engine, out, manifest)
    with engine.connect() as conn:
        incidents = [r.body for r in conn.execute(select(EVENTS.c.body).where(EVENTS.c.typ == "incident"))]
        clips = conn.execute(select(CLIPS.c.state, CLIPS.c.frames, CLIPS.c.width, CLIPS.c.original_key)).all()
    engine.dispose()
    assert report["ok"], report["examples"]
    assert report["clips_expected"] == report["clips_stored"] == len(clips) >= 10
    assert report["faults_fired"] == {"camera_failure": 1} and report["incidents_camera_failed"] >= 1
    # As a kiosk sends them: the lowest rating and the complaint each refer to the rating; a clip is named
    # exactly when the camera was working, else the incident says why there is none.
    assert {b["kind"] for b in incidents} == {"lowest_rating", "complaint"}
    assert all(b["ref"] and (b["camera"] == "ok") == ("clip" in b) for b in incidents)
    assert sum(b["camera"] == "failed" for b in incidents) == report["incidents_camera_failed"]
    # Small clips: 2 s of pre-roll and 2 s of post-roll at 2 fps, 160x120, as the scenario's defaults say.
    assert {(str(c.state), c.frames, c.width) for c in clips} == {("complete", 9, 160)}
    with av.open(str(Path(manifest["clip_store"]) / clips[0].original_key)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 9 and (frames[0].width, frames[0].height) == (160, 120)


@pytest.mark.slow
@pytest.mark.broker
def test_verify_reports_a_deleted_clip_as_missing_and_exits_1(kiosk_run: tuple[dict[str, Any], Path]) -> None:
    manifest, out = kiosk_run
    originals = sorted(Path(manifest["clip_store"]).rglob("*.mkv"))
    assert originals
    originals[0].unlink()
    res = subprocess.run([sys.executable, "-m", "motcua", "simulate", "verify", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr[-2000:]
    last = json.loads(res.stdout.strip().splitlines()[-1])
    assert (last["clips_missing"], last["clips_stored"]) == (1, last["clips_expected"] - 1)
    assert (last["lost"], last["clips_unlinked"], last["ok"]) == (0, 0, False)
    assert f"clip missing: {originals[0].stem}" in res.stdout and "<-- must be 0" in res.stdout
