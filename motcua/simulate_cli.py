"""`motcua simulate`: run a scenario, verify it against the ground truth, and the fairness report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

simulate_app = typer.Typer(help="Run a whole office or province without hardware; verify; fairness report.",
                           invoke_without_command=True)
OutOpt = Annotated[Path, typer.Option(help="Folder for the ground truth, the run manifest and the charts")]
DEFAULT_OUT = Path("data/sim")


def _fail(message: str) -> typer.Exit:
    from motcua.cli import fail

    return fail(message)


def _scenario(name: str) -> Any:
    from simulator.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(name)
    except ScenarioError as exc:
        raise _fail(str(exc)) from None


@simulate_app.callback()
def simulate(
    ctx: typer.Context,
    scenario: Annotated[str | None, typer.Option(help="Scenario file, or a shipped one: small-ward, district-day, "
                                                      "province-month, chaos")] = None,
    out: OutOpt = DEFAULT_OUT,
    database_url: Annotated[str | None, typer.Option(help="An EMPTY database (default: a new SQLite file in "
                                                          "--out); PostgreSQL for anything large")] = None,
    broker: Annotated[str | None, typer.Option(help="Use this broker, not a private Mosquitto (no broker "
                                                    "restarts then)")] = None,
    verbose: bool = False,
) -> None:
    """Run SCENARIO, then verify it; the last line printed is the verify JSON."""
    if ctx.invoked_subcommand is not None:
        return
    if scenario is None:
        raise _fail("give --scenario FILE or a shipped name (see `motcua simulate list`)")
    from motcua.cli import setup_logging

    setup_logging(verbose)
    from simulator.provision import NotEmpty
    from simulator.run import MissingLibrary, RunOptions, run_simulation
    from simulator.scenario import ScenarioError

    sc = _scenario(scenario)
    try:
        manifest = run_simulation(sc, RunOptions(out=out, database_url=database_url, broker=broker))
    except (NotEmpty, MissingLibrary, ScenarioError) as exc:  # ScenarioError: a world it cannot build
        raise _fail(str(exc)) from None
    _print_verify(out, manifest)


def _print_verify(out: Path, manifest: dict[str, Any]) -> None:
    from server.db.engine import make_engine
    from simulator.verify import table, verify

    engine = make_engine(manifest["database_url"])
    report = verify(engine, out, manifest)
    engine.dispose()
    report["wall_s"] = manifest.get("timings", {}).get("total_s")
    typer.echo(table(report))
    typer.echo(json.dumps(report, ensure_ascii=False, sort_keys=True))
    if not report["ok"]:
        raise typer.Exit(1)


@simulate_app.command("verify")
def verify_cmd(out: OutOpt = DEFAULT_OUT,
               database_url: Annotated[str | None, typer.Option(help="Default: the one in the run manifest")]
               = None) -> None:
    """Compare the ground truth in OUT with the server's database: table, then JSON; exit 1 on any loss."""
    from simulator.run import MANIFEST

    path = out / MANIFEST
    if not path.exists():
        raise _fail(f"{path}: no run manifest; run `motcua simulate --scenario NAME --out {out}` first")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if database_url:
        manifest["database_url"] = database_url
    try:
        _print_verify(out, manifest)
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None


@simulate_app.command("fairness")
def fairness_cmd(
    scenario: Annotated[str, typer.Option(help="Population model: quality spread, services, rating noise, policy")]
    = "province-month",
    per_bin: Annotated[int, typer.Option(min=20, max=20000, help="Officials simulated per ratings bin")] = 600,
    chart: Annotated[Path | None, typer.Option(help="Write the chart here (.svg or .png)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the population")] = 1,
) -> None:
    """How often the monthly grade misses the true one: our score vs a naive average, by ratings per month."""
    from simulator.fairness import fairness_report, render_table, write_chart

    report = fairness_report(_scenario(scenario), per_bin=per_bin, seed=seed)
    typer.echo(render_table(report))
    if chart is not None:
        write_chart(report, chart)
        typer.echo(f"chart written to {chart}")
    typer.echo(json.dumps(report, ensure_ascii=False, sort_keys=True))


@simulate_app.command("list")
def list_cmd() -> None:
    """The shipped scenarios."""
    from simulator.scenario import builtin_names, load_scenario

    for name in builtin_names():
        sc = load_scenario(name)
        typer.echo(f"{name:<16} {sc.counters:>4} counters  {sc.scenario.days:>2} day(s)  {sc.scenario.description}")
