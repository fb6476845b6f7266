"""`motcua bench`: the benchmark suite (bench/suite.py) from the main command.

The arguments go to the suite's own parser as they are (so `--write-docs` may take a path or none,
and `motcua bench --help` shows the suite's help).
"""

from __future__ import annotations

import typer

CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def bench(ctx: typer.Context) -> None:
    """Run the benchmarks: one table, --json, --quick, --only NAME..., --write-docs [PATH] (see --help)."""
    from bench.suite import main

    raise typer.Exit(main(ctx.args))
