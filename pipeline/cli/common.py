"""Helpers shared by the ``cli_*`` modules: turning library errors into messages and exit codes."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from pipeline.errors import PipelineError

P = ParamSpec("P")
R = TypeVar("R")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Run a command body; a PipelineError becomes one clear line on stderr and its exit code.

    Never a traceback for an expected problem: the message names the file, line and column
    when the error carries them.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PipelineError as err:
            click.echo(f"order-import: error: {err}", err=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("order-import: interrupted", err=True)
            sys.exit(130)

    return wrapper
