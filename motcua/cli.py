"""The `motcua` command: one CLI for the demo, the server processes and administration.

Heavy modules are imported inside commands, so `motcua --help` and small admin commands start fast.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from motcua import evaluation_cli

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from server.settings import Settings

app = typer.Typer(help="motcua: signed citizen ratings at one-stop counters -> fair monthly scores.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Units, counters, officials, sessions, API tokens and users.", no_args_is_help=True)
device_app = typer.Typer(help="Provision, list and revoke counter devices.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(device_app, name="device")
evaluation_cli.register(app)  # month, tasks, webhook (motcua/evaluation_cli.py)
from motcua.simulate_cli import simulate_app  # noqa: E402 - its heavy imports happen inside its commands

app.add_typer(simulate_app, name="simulate")
from motcua.bench_cli import CONTEXT as _BENCH_CONTEXT  # noqa: E402
from motcua.bench_cli import bench as _bench  # noqa: E402

app.command("bench", context_settings=_BENCH_CONTEXT)(_bench)

_state: dict[str, Any] = {"config": None}
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file (else $MOTCUA_CONFIG)")]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error that says what to do next, and exit."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def load(**overrides: Any) -> Settings:
    """Settings, or a readable explanation of what is wrong with them."""
    from pydantic import ValidationError

    from server.settings import load_settings

    try:
        return load_settings(_state["config"], **overrides)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise fail("invalid configuration (MOTCUA_* variables or the --config file):\n" + "\n".join(lines)) from None
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None


def engine_for(settings: Settings, *, check_schema: bool = True) -> Engine:
    from server.db.engine import SchemaOutOfDate, make_engine, require_current_schema

    engine = make_engine(settings.database_url)
    if check_schema:
        try:
            require_current_schema(engine)
        except SchemaOutOfDate as exc:
            raise fail(str(exc)) from None
    return engine


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions", "uvicorn.access", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def wait_for_signal(stop: threading.Event) -> None:
    """Block until SIGINT/SIGTERM (or `stop` is set elsewhere)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


@app.callback()
def main_options(config: ConfigOpt = None) -> None:
    _state["config"] = config


# --- processes ---------------------------------------------------------------------------------


@app.command()
def demo(
    broker: Annotated[str | None, typer.Option(help="Use this broker (mqtt://host:port), not an embedded one")] = None,
    port: Annotated[int, typer.Option(help="HTTP port of the demo server")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its SQLite database")] = Path("data/demo"),
    exit_after: Annotated[float | None, typer.Option(help="Stop after N seconds; print a JSON summary")] = None,
    counters: Annotated[int | None, typer.Option(min=1, max=50, help="Use only the scenario's first N counters "
                                                                     "(default: all)")] = None,
    rate: Annotated[float, typer.Option(min=0.01, help="Citizens per second across the office")] = 1.5,
    scenario: Annotated[str, typer.Option(help="Whose office: a scenario file or a shipped name")] = "small-ward",
    verbose: bool = False,
) -> None:
    """Run everything on one machine: broker, SQLite, ingest, web server and a simulated office."""
    setup_logging(verbose)
    from motcua.demo import office_world, run_demo
    from server.runtime import PortTaken

    try:
        world = office_world(scenario, counters)
    except ValueError as exc:  # a ScenarioError names the file, the key and the fix
        raise fail(str(exc)) from None
    try:
        summary = run_demo(broker=broker, port=port, data_dir=data_dir, exit_after=exit_after, world=world,
                           rate=rate)
    except PortTaken as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps(summary, ensure_ascii=False, sort_keys=True))


@app.command()
def server(
    ingest: Annotated[bool, typer.Option(help="Also run ingest in this process")] = True,
    verbose: bool = False,
) -> None:
    """Run the HTTP API and web console (and, by default, ingest)."""
    setup_logging(verbose)
    settings = load()
    from server.runtime import PortTaken, run_server

    try:
        run_server(settings, engine_for(settings), with_ingest=ingest)
    except PortTaken as exc:
        raise fail(str(exc)) from None


@app.command()
def ingest(
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes sharing the load (MQTT 5)")] = 1,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port (+1 per worker)")]
    = None,
    verbose: bool = False,
) -> None:
    """Run ingest: MQTT in, verified events into the database, acks out."""
    setup_logging(verbose)
    settings = load()
    engine = engine_for(settings)  # refuses to start against an old schema, and says the fix
    if workers > 1:
        engine.dispose()
        if settings.mqtt.protocol != 5:
            raise fail("several workers need MQTT 5 shared subscriptions: set MOTCUA_MQTT__PROTOCOL=5")
        from server.ingest.workers import Supervisor

        Supervisor(workers, _state["config"], metrics_port).run()
        return
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    from prometheus_client import REGISTRY

    from server.ingest.service import IngestService
    from server.mqtt import BrokerRefused

    service = IngestService(settings, engine, registry=REGISTRY).start()
    try:
        if not service.bus.wait_connected(30):
            logging.getLogger("motcua").warning("broker %s not reachable yet; still trying", settings.mqtt.url)
        stop = threading.Event()
        wait_for_signal(stop)
    except BrokerRefused as exc:
        raise fail(str(exc)) from None
    finally:
        service.stop()


@app.command()
def kiosk(
    config_file: Annotated[Path, typer.Argument(help="The kiosk's TOML file (motcua device provision --kind kiosk)")],
    verbose: bool = False,
) -> None:
    """Run a Raspberry Pi kiosk: touch UI on localhost, camera evidence, outbox and clip uploads."""
    setup_logging(verbose)
    from device.kiosk.config import load_config
    from device.kiosk.kiosk import Kiosk
    from device.kiosk.web import create_kiosk_app
    from server.runtime import HttpServer, PortTaken, check_port

    try:
        cfg = load_config(config_file)
        check_port(cfg.http_host, cfg.http_port)
    except (ValueError, PortTaken) as exc:
        raise fail(str(exc)) from None
    running = Kiosk(cfg).start()
    http = HttpServer(create_kiosk_app(running), cfg.http_host, cfg.http_port).start()
    typer.echo(f"kiosk {cfg.device_id}: open {http.url} full-screen (docs/kiosk.md)")
    try:
        wait_for_signal(threading.Event())
    finally:
        http.stop()
        running.stop()


# --- database ----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the version this program needs."""
    settings = load()
    from server.db.engine import upgrade

    upgrade(settings.database_url)
    typer.echo("database schema is current")


@db_app.command("status")
def db_status() -> None:
    """Say whether the schema is current."""
    from server.db.engine import pending_migrations

    missing = pending_migrations(engine_for(load(), check_schema=False))
    typer.echo("current" if not missing else f"{len(missing)} migration(s) pending: run `motcua db upgrade`")
    raise typer.Exit(0 if not missing else 1)


# --- administration ----------------------------------------------------------------------------


def _admin(action: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a registry/session function in a transaction, turning its errors into CLI errors."""
    from server.registry import RegistryError
    from server.sessions import SessionError

    engine = engine_for(load())
    try:
        with engine.begin() as conn:
            return action(conn, *args, **kwargs)
    except (RegistryError, SessionError) as exc:
        raise fail(str(exc)) from None


@admin_app.command("unit-add")
def unit_add(code: str, name: str) -> None:
    """Register a unit (an office with a one-stop section)."""
    from server.registry import create_unit

    typer.echo(_admin(lambda c: create_unit(c, code=code, name=name)))


@admin_app.command("counter-add")
def counter_add(unit: Annotated[str, typer.Option(help="Unit code")], code: str, name: str,
                service_type: Annotated[str | None, typer.Option(help="e.g. ho-tich, dat-dai")] = None) -> None:
    """Register a counter in a unit."""
    from server.registry import create_counter, unit_id

    typer.echo(_admin(lambda c: create_counter(c, unit_id=unit_id(c, unit), code=code, name=name,
                                                service_type=service_type)))


@admin_app.command("official-add")
def official_add(unit: Annotated[str, typer.Option(help="Unit code")], code: str, full_name: str,
                 post: str = "", photo_url: str | None = None, duty_group: str | None = None) -> None:
    """Register an official (code = employee number in the HR system)."""
    from server.registry import create_official, unit_id

    typer.echo(_admin(lambda c: create_official(c, unit_id=unit_id(c, unit), code=code, full_name=full_name,
                                                 post=post, photo_url=photo_url, duty_group=duty_group)))


@admin_app.command("sign-in")
def admin_sign_in(counter: Annotated[str, typer.Option(help="Counter code")],
                  official: Annotated[str, typer.Option(help="Official code")]) -> None:
    """Sign an official in at a counter now."""
    from sqlalchemy import select

    from server.db.models import OFFICIALS
    from server.db.types import utcnow
    from server.registry import RegistryError, counter_id
    from server.sessions import sign_in

    def act(c: Any) -> int:
        oid = c.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.code == official)).scalar()
        if oid is None:
            raise RegistryError("not_found", f"no official {official!r}")
        now = utcnow()
        return sign_in(c, counter_id=counter_id(c, counter), official_id=oid, at=now, now=now, actor="cli").id

    typer.echo(f"session {_admin(act)}")


@admin_app.command("sign-out")
def admin_sign_out(counter: Annotated[str, typer.Option(help="Counter code")]) -> None:
    """Sign out whoever serves at a counter now."""
    from server.db.types import utcnow
    from server.registry import counter_id
    from server.sessions import sign_out

    now = utcnow()
    _admin(lambda c: sign_out(c, counter_id=counter_id(c, counter), at=now, now=now, actor="cli"))
    typer.echo("signed out")


@admin_app.command("credential-set")
def credential_set(official: str, method: Annotated[str, typer.Option(help="pin or badge")] = "pin") -> None:
    """Enrol an official's kiosk PIN or badge code; it is read from the terminal and only its verifier is kept."""
    from server.credentials import set_credential

    secret = typer.prompt("PIN" if method == "pin" else "badge code", hide_input=True,
                          confirmation_prompt=sys.stdin.isatty())
    _admin(lambda c: set_credential(c, official_code=official, method=method, secret=secret,  # type: ignore[arg-type]
                                    actor="cli"))
    typer.echo(f"{method} set for {official}")


@admin_app.command("token-create")
def token_create(name: str,
                 scope: Annotated[list[str], typer.Option(help="Repeat: sessions:write, read, admin, read:scores, "
                                                               "tasks:write")],
                 unit: Annotated[list[str] | None, typer.Option(help="Repeat: limit the token to these units")]
                 = None) -> None:
    """Create an API token for a machine client; it is printed once."""
    from server.registry import create_api_token

    token = _admin(lambda c: create_api_token(c, name=name, scopes=scope, actor="cli", units=unit))
    typer.echo(token)


@admin_app.command("list")
def admin_list() -> None:
    """Units with their counters and officials."""
    from sqlalchemy import select

    from server.db.models import COUNTERS, OFFICIALS, UNITS

    with engine_for(load()).connect() as conn:
        for unit in conn.execute(select(UNITS).order_by(UNITS.c.code)):
            typer.echo(f"{unit.code}  {unit.name}")
            for c in conn.execute(select(COUNTERS).where(COUNTERS.c.unit_id == unit.id).order_by(COUNTERS.c.code)):
                typer.echo(f"  counter  {c.code:<14} {c.name}")
            for o in conn.execute(select(OFFICIALS).where(OFFICIALS.c.unit_id == unit.id).order_by(OFFICIALS.c.code)):
                typer.echo(f"  official {o.code:<14} {o.full_name} ({o.post})")


# --- devices -----------------------------------------------------------------------------------


@device_app.command("provision")
def device_provision(
    counter: Annotated[str, typer.Option(help="Counter code the device sits at")],
    kind: Annotated[str, typer.Option(help="button (ESP32), kiosk (Raspberry Pi) or simulated")] = "button",
    device_id: Annotated[str | None, typer.Option("--id", help="Device id (default: generated)")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the device's configuration file here")] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="Broker host as the device must reach it")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="Broker port as the device must reach it")] = None,
    wifi_ssid: Annotated[str | None, typer.Option(help="Wi-Fi network (button boxes)")] = None,
    ntp_host: Annotated[str | None, typer.Option(help="NTP server the box syncs its clock with")] = None,
    server_url: Annotated[str | None, typer.Option(help="URL kiosks upload clips to (default: api.public_url)")]
    = None,
) -> None:
    """Create a device with its own key at a counter, and its configuration file."""
    import secrets as _secrets

    from server.db.models import DeviceKind
    from server.registry import counter_id, provision_device

    settings = load()
    made = _admin(lambda c: provision_device(c, counter_id=counter_id(c, counter), kind=DeviceKind(kind),
                                             actor="cli", device_id=device_id))
    host, port = mqtt_host or settings.mqtt.host, mqtt_port or settings.mqtt.port
    # Each device has its own broker account too: the broker's ACL keeps it to its own topics.
    mqtt_password = _secrets.token_urlsafe(18)
    typer.echo(f"device {made.id} provisioned at counter {counter}")
    typer.echo(f"register it with the broker:  mosquitto_passwd -b /etc/mosquitto/passwd {made.id} {mqtt_password}")
    if out is None:
        typer.echo(f"device secret (shown once): {made.secret_hex}")
        return
    if kind == "kiosk":
        from device.kiosk.config import render_kiosk_toml

        url = server_url or settings.api.public_url or f"http://{settings.api.host}:{settings.api.port}"
        text = render_kiosk_toml(device_id=made.id, secret_hex=made.secret_hex, mqtt_host=host, mqtt_port=port,
                                 mqtt_password=mqtt_password, server_url=url)
    else:
        text = _device_config_text(made.id, made.secret_hex, host, port, mqtt_password, wifi_ssid, ntp_host, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, even briefly
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    out.chmod(0o600)  # an existing file keeps its old mode through O_CREAT
    typer.echo(f"wrote {out} (it holds the device secret: keep it off shared drives)")
    if kind == "kiosk":
        typer.echo(f"copy it to the Pi and run:  motcua kiosk {out.name}  (docs/kiosk.md)")
    if kind == "button":
        typer.echo(f"copy it to the board:  mpremote connect /dev/ttyUSB0 cp {out} :config_local.py "
                   "(docs/firmware.md, 'Flashing and deploying a real board')")


def _device_config_text(device_id: str, secret_hex: str, host: str, port: int, mqtt_password: str,
                        wifi_ssid: str | None, ntp_host: str | None, kind: str) -> str:
    if kind == "button":
        from device.firmware_config import render_config_local

        extra = {"ntp_host": ntp_host} if ntp_host is not None else {}
        return render_config_local(device_id=device_id, secret_hex=secret_hex, mqtt_host=host, mqtt_port=port,
                                   mqtt_user=device_id, mqtt_password=mqtt_password, wifi_ssid=wifi_ssid, **extra)
    return (f"# motcua device configuration, written by `motcua device provision`\n"
            f"device_id = {device_id!r}\nsecret_hex = {secret_hex!r}\nmqtt_host = {host!r}\nmqtt_port = {port}\n"
            f"mqtt_user = {device_id!r}\nmqtt_password = {mqtt_password!r}\n")


@device_app.command("revoke")
def device_revoke(device_id: str, reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")]) -> None:
    """Refuse a device's events from now on and clear its retained config."""
    from server.registry import revoke_device

    _admin(lambda c: revoke_device(c, device_id=device_id, reason=reason, actor="cli"))
    typer.echo(f"device {device_id} revoked")


@device_app.command("list")
def device_list() -> None:
    """Devices with their counter, status and last contact."""
    from sqlalchemy import select

    from server.db.models import COUNTERS, DEVICES

    engine = engine_for(load())
    with engine.connect() as conn:
        rows = conn.execute(select(DEVICES.c.id, COUNTERS.c.code, DEVICES.c.kind, DEVICES.c.status,
                                   DEVICES.c.online, DEVICES.c.last_seen_at)
                            .join(COUNTERS, COUNTERS.c.id == DEVICES.c.counter_id).order_by(DEVICES.c.id)).all()
    for r in rows:
        seen = r.last_seen_at.isoformat(timespec="seconds") if r.last_seen_at else "never"
        state = "online" if r.online else "offline"
        typer.echo(f"{r.id:<24} {r.code:<12} {r.kind:<10} {r.status:<8} {state:<8} {seen}")


from motcua import cli_console  # noqa: E402  (users, audit, clips: needs the helpers above)

cli_console.register(app, admin_app)


def main() -> None:
    app()
