"""The one place where an error becomes what a person at a terminal sees.

``sonic-rec`` and ``sonic-train`` both run through :func:`run_cli`: a user's
mistake (:class:`UsageError`) is one ``error: ...`` line and exit status 2,
another deliberate error one line and status 1, Ctrl-C status 130, and a bug a
logged traceback and status 70 (EX_SOFTWARE, sysexits.h).
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from dataset.errors import SonicRLError, UsageError
from dataset.escaping import printable

__all__ = ["run_cli"]

log = logging.getLogger("sonic_rl")


def run_cli(command: click.Command, *, interrupted: str = "interrupted") -> NoReturn:
    """Run a click command or group as a console entry point."""
    try:
        command.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        click.echo(f"error: {printable(exc)}", err=True)  # may quote a file's metadata or a client's words
        sys.exit(2)
    except SonicRLError as exc:
        click.echo(f"error: {printable(exc)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo(interrupted, err=True)
        sys.exit(130)
    except Exception:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.ERROR)
        log.exception("internal error (please report it with this traceback)")
        sys.exit(70)
    sys.exit(0)
