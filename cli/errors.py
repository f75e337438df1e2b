"""How the CLI reports errors: one line and exit code 2 for a user's error, a traceback with --debug;
and notices (:class:`mrirecon.errors.Notice`) as one line each, ``Note: ...``."""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from typing import Any

import click

from mrirecon.errors import MriReconError, Notice
from mrirecon.runtime import CONTINUES, Terminated, leave_dying_workers
from mrirecon.workers import Display, WarningDisplay

#: Exit code for errors the user can fix (bad file, bad option, bad config).
USER_ERROR = 2
#: Exit code for a bug (an exception no input explains); 1 means "some inputs failed" for batch.
INTERNAL_ERROR = 3
#: Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: Exit code of a run stopped by SIGTERM (128 + SIGTERM).
TERMINATED = 143


def debug_enabled(ctx: click.Context | None) -> bool:
    """Whether ``--debug`` was given (or ``MRIRECON_DEBUG=1`` is set)."""
    if os.environ.get("MRIRECON_DEBUG", "") not in ("", "0"):
        return True
    while ctx is not None:
        if isinstance(ctx.obj, dict) and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return False


class ErrorReportingGroup(click.Group):
    """A click group that turns :class:`MriReconError` into one line on stderr and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default", Notice)
                warnings.showwarning = WarningDisplay(Display(notes=True), warnings.showwarning)
                return super().invoke(ctx)
        except MriReconError as error:
            if debug_enabled(ctx):
                traceback.print_exc()  # the traceback, and still the user-error exit code
            else:
                click.echo(f"Error: {error.one_line()}", err=True)
                command = f"mrirecon --debug {ctx.invoked_subcommand or 'COMMAND'} ..."
                click.echo(f"(run `{command}` for the traceback)", err=True)
            sys.exit(USER_ERROR)
        except KeyboardInterrupt as interruption:
            leave_dying_workers()  # (a traceback after the one line below, from the exit handlers)
            if debug_enabled(ctx):
                traceback.print_exc()
            stopped = isinstance(interruption, Terminated)
            what = "Stopped by SIGTERM" if stopped else "Interrupted"
            again = CONTINUES.get(ctx.invoked_subcommand or "")  # what continues the stopped run
            click.echo(f"{what} ({again})." if again else f"{what}.", err=True)
            sys.exit(TERMINATED if stopped else INTERRUPTED)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception:  # noqa: BLE001 (reported in full and exit 3: nothing is swallowed)
            # not something the input or the options explain: a bug, shown in full
            traceback.print_exc()
            click.echo(
                "mrirecon stopped on an internal error (a bug, not your data); the traceback above "
                "says where. Please report it.",
                err=True,
            )
            sys.exit(INTERNAL_ERROR)
