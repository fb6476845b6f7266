"""`motcua` subcommands of the supervisor console: users and roles, the audit trail, clip retention.

Registered on the main command by motcua/cli.py (`register`). Every change is audited with actor "cli".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from motcua.cli import _admin, engine_for, fail, load

audit_app = typer.Typer(help="The hash-chained audit trail: verify it, export it.", no_args_is_help=True)
clips_app = typer.Typer(help="Evidence clips: retention.", no_args_is_help=True)
Units = Annotated[list[str] | None, typer.Option("--unit", help="Unit code (repeat); supervisors and unit heads")]
Official = Annotated[str | None, typer.Option(help="Official code: the record an 'official' account belongs to")]
Role = Annotated[str, typer.Option(help="admin, supervisor, unit_head, official or viewer")]


def register(app: typer.Typer, admin_app: typer.Typer) -> None:
    """Add these commands to `motcua` and `motcua admin`."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(clips_app, name="clips")
    for name, command in (("user-add", user_add), ("user-role", user_role), ("user-disable", user_disable),
                          ("user-enable", user_enable), ("user-password", user_password),
                          ("user-list", user_list), ("user-unlock", user_unlock)):
        admin_app.command(name)(command)


def _password() -> str:
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=sys.stdin.isatty()))


def user_add(username: str, role: Role = "viewer", unit: Units = None, official: Official = None) -> None:
    """Create a console user; the password is read from the terminal (or stdin), never from arguments."""
    from server.users import create_user

    password = _password()
    typer.echo(_admin(lambda c: create_user(c, username=username, password=password, role=role, actor="cli",
                                            units=unit or [], official=official)))


def user_role(username: str, role: Role, unit: Units = None, official: Official = None) -> None:
    """Change a user's role (and units, or official); audited with the old and new values."""
    from server.users import set_role

    change = _admin(lambda c: set_role(c, username=username, role=role, actor="cli", units=unit or [],
                                       official=official))
    typer.echo(f"{username}: {change['from']} -> {change['to']}")


def user_disable(username: str, reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")]) -> None:
    """Disable a user: their console sessions end at the next request."""
    from server.users import set_disabled

    _admin(lambda c: set_disabled(c, username=username, disabled=True, actor="cli", reason=reason))
    typer.echo(f"{username} disabled")


def user_enable(username: str, reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")]) -> None:
    """Enable a disabled user again."""
    from server.users import set_disabled

    _admin(lambda c: set_disabled(c, username=username, disabled=False, actor="cli", reason=reason))
    typer.echo(f"{username} enabled")


def user_password(username: str) -> None:
    """Set a new password for a user (read from the terminal or stdin)."""
    from server.users import set_password

    password = _password()
    _admin(lambda c: set_password(c, username=username, password=password, actor="cli"))
    typer.echo(f"password of {username} changed")


def user_list() -> None:
    """Users with their role, units or official, and state."""
    from server.users import list_users

    with engine_for(load()).connect() as conn:
        for u in list_users(conn):
            scope = ",".join(u["units"]) or (f"official {u['official']}" if u["official"] else "all units")
            typer.echo(f"{u['username']:<24} {u['role']:<11} {scope:<30} {'disabled' if u['disabled'] else ''}")


def user_unlock(username: str) -> None:
    """Lift a sign-in lock on a user name (after too many wrong passwords)."""
    from server.login_throttle import unlock

    _admin(lambda c: unlock(c, username=username, actor="cli"))
    typer.echo(f"{username} may sign in again")


def _expect(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    seq, _, digest = value.partition(":")
    if not (seq.isdigit() and len(digest) == 64):
        raise fail("--expect takes SEQ:HASH as printed by an earlier `motcua audit verify`")
    return int(seq), digest.lower()


@audit_app.command("verify")
def audit_verify(expect: Annotated[str | None, typer.Option(help="SEQ:HASH of a head noted earlier")] = None) -> None:
    """Check the whole chain; exit 1 naming the first broken entry."""
    from server.audit_chain import verify

    wanted = _expect(expect)
    with engine_for(load()).connect() as conn:
        report = verify(conn, expect=wanted, progress=lambda n: typer.echo(f"… {n} entries checked", err=True))
    if report.ok:
        typer.echo(f"audit chain intact: {report.entries} entries; head {report.head_seq}:{report.head_hash}")
        return
    where = f"entry id {report.broken_id}" if report.broken_id is not None else "the end of the log"
    seq = f" (chain position {report.broken_seq})" if report.broken_seq is not None else ""
    typer.secho(f"audit chain BROKEN at {where}{seq}: {report.problem}. {report.entries} entries before it are "
                "intact.", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@audit_app.command("export")
def audit_export(out: Annotated[Path, typer.Option(help="CSV file to write")],
                 actor: Annotated[str | None, typer.Option(help="Only this actor (user:NAME, token:NAME, cli)")]
                 = None,
                 target_type: Annotated[str | None, typer.Option(help="Only this kind of item (review, clip…)")]
                 = None,
                 target_id: Annotated[str | None, typer.Option(help="Only this item")] = None) -> None:
    """Export entries as CSV with their chain positions and hashes (the export is audited)."""
    from server.audit_views import AuditFilter, export_csv, start_export

    where = AuditFilter(actor=actor, target_type=target_type, target_id=target_id)
    engine = engine_for(load())
    with engine.begin() as conn:
        upto, n = start_export(conn, where=where, actor="cli")
    with engine.connect() as conn, out.open("w", encoding="utf-8", newline="") as f:
        for line in export_csv(conn, where=where, upto_id=upto):
            f.write(line)
    typer.echo(f"wrote {n} entries to {out}")


def _purge_line(item: Any) -> str:
    return f"{item.clip_id}  {item.reason}"


@clips_app.command("purge")
def clips_purge(dry_run: Annotated[bool, typer.Option(help="List what would be deleted; delete nothing")] = False
                ) -> None:
    """Delete the media of clips past retention (dismissed after N days, confirmed after the month closes)."""
    from server.clips.storage import make_storage
    from server.review.retention import purge_due

    settings = load()
    outcome = purge_due(engine_for(settings), make_storage(settings), settings=settings, actor="cli",
                        dry_run=dry_run, progress=lambda item: typer.echo(_purge_line(item)))
    verb = "would delete" if dry_run else "deleted"
    typer.echo(f"{verb} the media of {len(outcome)} clip(s)")
