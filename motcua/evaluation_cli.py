"""`motcua month …`, `motcua tasks …`, `motcua webhook …`: the monthly evaluation from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

month_app = typer.Typer(help="Monthly scores: status, close, finalize, amend, verify, year roll-up.",
                        no_args_is_help=True)
tasks_app = typer.Typer(help="Task results, bonus/penalty items, general points, discipline measures.",
                        no_args_is_help=True)
webhook_app = typer.Typer(help="Signed webhooks to HR systems on month close.", no_args_is_help=True)
Units = Annotated[list[str] | None, typer.Option("--unit", help="Repeat: only these units (default: all)")]


def register(app: typer.Typer) -> None:
    app.add_typer(month_app, name="month")
    app.add_typer(tasks_app, name="tasks")
    app.add_typer(webhook_app, name="webhook")


def _run(action: Any, *, write: bool = True) -> Any:
    """Run a data-layer function in a transaction; its errors become CLI errors that say what to do."""
    from motcua.cli import engine_for, fail, load
    from server.evaluation import EvaluationError

    settings = load()
    engine = engine_for(settings)
    try:
        with (engine.begin() if write else engine.connect()) as conn:
            return action(conn, settings)
    except EvaluationError as exc:
        lines = [str(exc)] + [f"  {json.dumps(d, ensure_ascii=False)}" for d in exc.details[:50]]
        if len(exc.details) > 50:
            lines.append(f"  … and {len(exc.details) - 50} more")
        raise fail("\n".join(lines)) from None
    finally:
        engine.dispose()


def _deliver() -> None:
    """Send the webhooks the command queued (once each); what fails is retried by the server."""
    from motcua.cli import engine_for, load
    from server.evaluation.webhooks import deliver_due

    settings = load()
    engine = engine_for(settings)
    try:
        sent = deliver_due(engine, settings=settings.webhooks)
    finally:
        engine.dispose()
    if sent:
        typer.echo(f"webhooks: {sent} delivery attempt(s); see `motcua webhook list`")


@month_app.command("status")
def status(period: str, unit: Units = None) -> None:
    """Each unit's phase for a month (open, provisional, closed, final)."""
    from server.db.types import utcnow
    from server.evaluation.lifecycle import month_status
    from server.evaluation.units import unit_ids_for

    def act(conn: Any, settings: Any) -> list[dict[str, Any]]:
        ids = unit_ids_for(conn, unit)
        return month_status(conn, settings=settings, period=period, unit_ids=None if ids is None else list(ids),
                            now=utcnow())

    for r in _run(act, write=False):
        extra = f" by {r['finalized_by'] or r['closed_by']}" if r["closed_by"] else ""
        typer.echo(f"{r['unit']:<16} {r['phase']:<12} officials={r['officials'] or '-'}{extra}")


@month_app.command("close")
def close(period: str, unit: Units = None,
          force: Annotated[str | None, typer.Option(help="Close before the review deadline; say why")] = None) -> None:
    """Score and freeze a month (version 1) after its review deadline."""
    from server.db.types import utcnow
    from server.evaluation.lifecycle import close_month

    def progress(msg: str) -> None:
        typer.echo(f"… {msg}", err=True)

    report = _run(lambda c, s: close_month(c, settings=s, period=period, units=unit, actor="cli", now=utcnow(),
                                           force_reason=force, progress=progress))
    typer.echo(f"{period}: closed {len(report.closed)} unit(s), closed again {len(report.reclosed)}, "
               f"{report.officials:,} officials in {report.seconds['total']:.1f} s "
               f"(aggregate {report.seconds['aggregate']:.1f} s, score {report.seconds['score']:.1f} s)")
    if report.unresolved_reviews:
        typer.echo(f"{report.unresolved_reviews} review(s) were still undecided: not deducted "
                   "(incidents.pending_at_close = ignore); a later verdict counts by amendment")
    if report.already_final:
        typer.echo(f"already final, left alone: {', '.join(report.already_final)}")
    for code, reviews in report.blocked.items():
        typer.echo(f"not closed: {code} has undecided review(s) {reviews} (incidents.pending_at_close = block)",
                   err=True)
    for problem in report.failed:
        typer.echo(f"not closed: {json.dumps(problem, ensure_ascii=False)}", err=True)
    _deliver()
    if not report.complete:
        raise typer.Exit(1)
    typer.echo(f"check the scores, then: motcua month finalize {period}")


@month_app.command("finalize")
def finalize(period: str, unit: Units = None) -> None:
    """Make closed unit months final: immutable; corrections only by amendment."""
    from server.db.types import utcnow
    from server.evaluation.lifecycle import finalize_month

    done = _run(lambda c, s: finalize_month(c, period=period, units=unit, actor="cli", now=utcnow()))
    typer.echo(f"{period}: final for {len(done)} unit(s)" + (f": {', '.join(done)}" if len(done) <= 20 else ""))
    _deliver()


@month_app.command("amend")
def amend(period: str, unit: Annotated[str, typer.Option(help="The unit whose final month is corrected")],
          reason: Annotated[str, typer.Option(help="Why (kept with the new versions and in the audit log)")],
          official: Annotated[list[str] | None, typer.Option(help="Repeat: only these officials")] = None) -> None:
    """Correct a final month from today's inputs: a new version for each official whose score changes."""
    from server.db.types import utcnow
    from server.evaluation.lifecycle import amend_month

    done = _run(lambda c, s: amend_month(c, settings=s, period=period, unit=unit, reason=reason, actor="cli",
                                         now=utcnow(), officials=official))
    for a in done:
        before = f"{a.previous['total']} {a.previous['grade']}" if a.previous else "none"
        typer.echo(f"{a.official}: version {a.version}: {before} -> {a.current['total']} {a.current['grade']}")
    _deliver()


@month_app.command("verify")
def verify(period: str, unit: Units = None) -> None:
    """Re-hash every stored score of a month and check it against its digest."""
    from server.evaluation.snapshots import verify as check
    from server.evaluation.units import unit_ids_for

    def act(conn: Any, _settings: Any) -> list[dict[str, Any]]:
        ids = unit_ids_for(conn, unit)
        return check(conn, period=period, unit_ids=None if ids is None else list(ids))

    bad = _run(act, write=False)
    for b in bad:
        typer.echo(f"MISMATCH {b['official']} v{b['version']}: {b['problem']}", err=True)
    typer.echo(f"{period}: {'every stored score matches its digest' if not bad else f'{len(bad)} mismatch(es)'}")
    raise typer.Exit(1 if bad else 0)


@month_app.command("year")
def year(year_: Annotated[str, typer.Argument(metavar="YEAR")], unit: Units = None,
         as_json: Annotated[bool, typer.Option("--json", help="One JSON object per official")] = False) -> None:
    """The year roll-up: mean of each official's final monthly totals and the year grade (NĐ 335)."""
    from server.evaluation.reads import year_unit
    from server.evaluation.units import all_units, unit_ids_for

    def act(conn: Any, settings: Any) -> list[dict[str, Any]]:
        units = unit_ids_for(conn, unit) or all_units(conn)
        return [r for uid, code in units.items()
                for r in year_unit(conn, settings=settings, year=year_, unit_id=uid, unit_code=code)]

    for r in _run(act, write=False):
        r.pop("_key")
        if as_json:
            typer.echo(json.dumps(r, ensure_ascii=False))
        else:
            typer.echo(f"{r['unit']:<12} {r['official']:<14} months={r['months']:<3} {r['total']:>7} {r['grade']}")


@tasks_app.command("import")
def tasks_import(file: Annotated[Path, typer.Argument(help="CSV file (UTF-8), '-' for standard input")],
                 replace: Annotated[bool, typer.Option(help="Each official-month in the file is its whole sheet")]
                 = False) -> None:
    """Import task results from a CSV file: every row checked first, nothing written if any is wrong."""
    import hashlib

    from server.evaluation import task_results
    from server.evaluation.policies import active_policy

    data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()

    def act(conn: Any, settings: Any) -> Any:
        rows = task_results.parse_csv(data)
        policy = active_policy(conn, settings=settings).policy
        return task_results.import_rows(conn, rows=rows, policy=policy, actor="cli", source="csv",
                                        mode="replace" if replace else "upsert",
                                        digest=hashlib.sha256(data).hexdigest())

    report = _run(act)
    typer.echo(f"imported {report.rows:,} row(s) for {report.officials:,} official(s), {', '.join(report.periods)} "
               f"({report.mode})")
    if report.closed_months:
        typer.echo(f"note: already closed or final: {', '.join(report.closed_months[:20])}: these rows count only "
                   "after `month close` again (closed) or `month amend` (final)")


@tasks_app.command("show")
def tasks_show(period: str, official: str) -> None:
    """An official-month's task results as JSON."""
    from sqlalchemy import select

    from server.db.models import OFFICIALS
    from server.evaluation import EvaluationError, task_results

    def act(conn: Any, _settings: Any) -> dict[str, Any]:
        oid = conn.execute(select(OFFICIALS.c.id).where(OFFICIALS.c.code == official)).scalar()
        if oid is None:
            raise EvaluationError("not_found", f"no official {official!r}")
        return task_results.sheet(conn, official_id=oid, period=period)

    typer.echo(json.dumps(_run(act, write=False), ensure_ascii=False, indent=2))


@webhook_app.command("add")
def webhook_add(name: str, url: str,
                event: Annotated[list[str], typer.Option(help="Repeat: month.closed, month.final, score.amended")],
                unit: Annotated[str | None, typer.Option(help="Only this unit's events")] = None) -> None:
    """Subscribe an HR system; its signing secret is printed once."""
    from server.evaluation.units import unit_ids_for
    from server.evaluation.webhooks import add_subscription

    def act(conn: Any, _settings: Any) -> tuple[int, str]:
        uid = next(iter(unit_ids_for(conn, [unit]) or {})) if unit else None
        return add_subscription(conn, name=name, url=url, events=event, unit_id=uid, actor="cli")

    sub_id, secret = _run(act)
    typer.echo(f"webhook {sub_id}: give the receiver this secret (shown once): {secret}")


@webhook_app.command("list")
def webhook_list(last: Annotated[int, typer.Option(help="Deliveries shown")] = 20) -> None:
    """Subscriptions and the latest deliveries (the delivery log)."""
    from sqlalchemy import select

    from server.db.models import WEBHOOK_DELIVERIES, WEBHOOK_SUBSCRIPTIONS

    def act(conn: Any, _settings: Any) -> tuple[list[Any], list[Any]]:
        subs = list(conn.execute(select(WEBHOOK_SUBSCRIPTIONS).order_by(WEBHOOK_SUBSCRIPTIONS.c.id)))
        log = list(conn.execute(select(WEBHOOK_DELIVERIES).order_by(WEBHOOK_DELIVERIES.c.id.desc()).limit(last)))
        return subs, log

    subs, log = _run(act, write=False)
    for s in subs:
        typer.echo(f"#{s.id} {s.name} {s.url} [{s.events}]{'' if s.active else ' (inactive)'}")
    for d in log:
        typer.echo(f"  delivery {d.id} #{d.subscription_id} {d.event:<14} {d.state:<9} attempts={d.attempts} "
                   f"status={d.last_status or '-'} {d.last_error or ''}")


@webhook_app.command("deliver")
def webhook_deliver(retry_failed: Annotated[bool, typer.Option(help="Queue failed deliveries again first")]
                    = False) -> None:
    """Attempt the due deliveries now (the server does this every few seconds)."""
    from server.evaluation.webhooks import retry_failed as requeue

    if retry_failed:
        typer.echo(f"{_run(lambda c, _s: requeue(c, delivery_ids=None, actor='cli'))} failed delivery(ies) requeued")
    _deliver()
    typer.echo("done")
