"""`motcua bench`: the benchmark suite (bench/suite.py) from the main command."""

from __future__ import annotations

from typing import Annotated

import typer


def bench(quick: Annotated[bool, typer.Option(help="Small runs, for a smoke test")] = False,
          json_out: Annotated[bool, typer.Option("--json", help="JSON instead of the table")] = False,
          only: Annotated[list[str] | None, typer.Option(help="Run only these (repeat): ingest, scoring, "
                                                             "firmware, kiosk")] = None) -> None:
    """Run the benchmarks and print one table (or --json)."""
    from bench.suite import main

    raise typer.Exit(main([*(["--quick"] if quick else []), *(["--json"] if json_out else []),
                           *(["--only", *only] if only else [])]))
