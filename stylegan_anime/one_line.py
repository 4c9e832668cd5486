"""One-line errors for the `tools/*.py` scripts, as `stylegan-anime` gives them (light: no torch import).

    error_line(e)          the first non-blank line of an exception's message, else its type name
    run_click(command)     run a click command: user mistakes -> `error: ...` on stderr, exit code 2
"""
from __future__ import annotations

import sys


def run_click(command, argv: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a click command the way `stylegan-anime` does: user mistakes (bad flags, ValueError from the
    editing and report functions, unreadable checkpoints) become one line `error: ...` on stderr and exit
    code 2, no traceback."""
    import click

    try:
        code = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(2)
    except (ValueError, OSError) as e:  # ConfigError, CheckpointError and WriteError are ValueErrors
        click.echo(f"error: {error_line(e)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def error_line(e: BaseException) -> str:
    """One line for `error: ...`: the first non-blank line of the message, else the exception's type name
    (`EOFError()` has no message; a message may start with a newline)."""
    try:
        text = str(e)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the error report
        text = ""
    return next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
