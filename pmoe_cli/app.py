"""The `pmoe` Typer app. Each subcommand lives in its own module and is registered here explicitly."""

from __future__ import annotations

import sys

import typer

from pmoe_core import __version__
from pmoe_core.errors import PmoeError, os_error_line

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


# --- subcommands: one module each, registered explicitly in pipeline order (the order `--help` lists them) ---
from pmoe_cli.convert import convert as _convert  # noqa: E402
from pmoe_cli.demo import demo as _demo  # noqa: E402
from pmoe_cli.eval import eval_cmd as _eval  # noqa: E402
from pmoe_cli.export import export as _export  # noqa: E402
from pmoe_cli.import_cmd import import_cmd as _import  # noqa: E402
from pmoe_cli.models import models as _models  # noqa: E402
from pmoe_cli.plan import plan_app  # noqa: E402
from pmoe_cli.predict import predict as _predict  # noqa: E402
from pmoe_cli.qa import qa_app  # noqa: E402
from pmoe_cli.route_inspect import route_inspect as _route_inspect  # noqa: E402
from pmoe_cli.store_cmds import check as _check, info as _info  # noqa: E402
from pmoe_cli.synth import synth as _synth  # noqa: E402
from pmoe_cli.train import train as _train  # noqa: E402
from pmoe_cli.vocab import vocab as _vocab  # noqa: E402

app.command("demo")(_demo)
app.command("synth")(_synth)
app.command("convert")(_convert)
app.command("check")(_check)
app.command("info")(_info)
app.command("export")(_export)
app.command("vocab")(_vocab)
app.command("models")(_models)
app.command("import")(_import)
app.command("train")(_train)
app.command("eval")(_eval)
app.command("predict")(_predict)
app.command("route-inspect")(_route_inspect)
app.add_typer(plan_app, name="plan")
app.add_typer(qa_app, name="qa")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors and system errors (OSError) become one line on stderr and exit code 1; usage errors
    exit 2 (click). This is the one place that turns them into lines."""
    try:
        app(args=argv, prog_name="pmoe", standalone_mode=True)
    except PmoeError as err:
        print(f"pmoe: error: {err.message}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # `pmoe info S | head`: the reader left; nothing to report
        sys.stderr.close()
        sys.exit(1)
    except OSError as err:  # disk full, permission denied, a path under /proc: the system's words, one line
        print(f"pmoe: error: {os_error_line(err)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("pmoe: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
