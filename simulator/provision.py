"""Register the simulated world with the server: units, officials (kiosk PINs), counters, devices, a token."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from motcua.protocol import credentials
from server import registry
from server.credentials import set_credential
from server.db.models import EVENTS, QUARANTINE, DeviceKind
from simulator.world import World

ACTOR = "simulator"


@dataclass
class Provisioned:
    secrets: dict[str, str]  # device id -> secret hex
    token: str  # the queue system's API token (sessions:write)
    verifiers: dict[str, str]  # official code -> PIN verifier (the kiosk's proof input; protocol §3.4)


class NotEmpty(RuntimeError):
    pass


def require_empty(engine: Engine) -> None:
    """Ground truth covers one run: a database that already holds events cannot be verified against it."""
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(EVENTS)).scalar_one()
        n += conn.execute(select(func.count()).select_from(QUARANTINE)).scalar_one()
    if n:
        raise NotEmpty(f"the database already holds {n} events or quarantine records: give the simulator an "
                       "empty database (a new --database-url), so its verify means something")


def provision(engine: Engine, world: World) -> Provisioned:
    kiosk_units = {c.unit for c in world.counters.values() if c.kind == "kiosk"}
    secrets: dict[str, str] = {}
    verifiers: dict[str, str] = {}
    with engine.begin() as conn:
        unit_ids = {code: registry.create_unit(conn, code=code, name=name) for code, name in world.units}
        for o in world.officials.values():
            registry.create_official(conn, unit_id=unit_ids[o.unit], code=o.code, full_name=o.name,
                                     post="Công chức một cửa", duty_group="mot-cua")
            if o.unit in kiosk_units:
                set_credential(conn, official_code=o.code, method="pin", secret=o.pin, actor=ACTOR)
                verifiers[o.code] = credentials.credential_verifier(o.pin, official=o.code, method="pin")
        for c in world.counters.values():
            cid = registry.create_counter(conn, unit_id=unit_ids[c.unit], code=c.code, name=c.name,
                                          service_type=c.service)
            kind = DeviceKind.KIOSK if c.kind == "kiosk" else DeviceKind.SIMULATED
            made = registry.provision_device(conn, counter_id=cid, kind=kind, actor=ACTOR, device_id=c.device_id)
            secrets[c.device_id] = made.secret_hex
        token = registry.create_api_token(conn, name="simulated-queue-system", scopes=["sessions:write"],
                                          actor=ACTOR)
    return Provisioned(secrets, token, verifiers)
