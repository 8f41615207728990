"""The `pmoe` Typer app. Each subcommand lives in its own module and is registered here explicitly."""

from __future__ import annotations

import sys

import typer

from pmoe_core import __version__
from pmoe_core.errors import PmoeError

app = typer.Typer(
    name="pmoe",
    help="Multi-dataset 3D point-cloud learning with Mixture-of-Experts (Point-MoE, 3D-MoE).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pmoe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Multi-dataset 3D point-cloud learning with Mixture-of-Experts (Point-MoE, 3D-MoE)."""


# --- subcommands (one module each; only working commands are registered) ---
# [register commands below this line]


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit code 1; usage errors exit 2 (click)."""
    try:
        app(args=argv, prog_name="pmoe", standalone_mode=True)
    except PmoeError as err:
        print(f"pmoe: error: {err.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("pmoe: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
