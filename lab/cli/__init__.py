"""The ``lab`` command line. Thin: parse, call the library, print, map errors to exit codes.

Exit codes (DESIGN.md): 0 passed/allowed, 1 the gate said no, 2 bad usage or configuration,
3 infrastructure error.
"""

from __future__ import annotations

import sys

import click

from lab.cli.app import cli
from lab.cli.crash import report_crash
from lab.errors import LabError


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; library errors become one clear line on stderr and their exit code; anything
    unexpected becomes one line naming a log file that holds the trace (exit 3), never a traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="lab", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("lab: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LabError as exc:
        click.echo(f"lab: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("lab: interrupted; `lab resume <campaign>` continues where it stopped", err=True)
        sys.exit(130)
    except Exception as exc:
        sys.exit(report_crash(exc, args))
    sys.exit(code if isinstance(code, int) else 0)
