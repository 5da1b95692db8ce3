"""Fatal errors with a message a person can act on, and the wrapper every console script uses.

Exit codes follow the project's convention: 0 success, 1 the thing asked for failed (for config
commands: the configuration has errors), 2 usage errors, 130 interrupted.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn, Protocol

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class WayRayError(Exception):
    """An error with a message for the operator and an optional hint on what to do about it."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(WayRayError):
    exit_code = EXIT_USAGE


def die(message: str, *, hint: str | None = None, exit_code: int = EXIT_FAILURE) -> NoReturn:
    raise WayRayError(message, hint=hint, exit_code=exit_code)


def debug_enabled() -> bool:
    return os.environ.get("WAYRAY_DEBUG", "") not in ("", "0")


def report(program: str, err: WayRayError) -> None:
    print(f"{program}: error: {err.message}", file=sys.stderr)
    if err.hint:
        print(f"{program}: hint: {err.hint}", file=sys.stderr)


class Main(Protocol):
    def __call__(self, argv: list[str] | None = None) -> int: ...


def cli_entry(program: str) -> Callable[[Callable[[list[str] | None], int]], Main]:
    """Decorate a ``main(argv) -> exit code`` so errors end in a clear message and the right code.

    Tracebacks are printed only for unexpected exceptions, or always when ``WAYRAY_DEBUG=1``.
    """

    def wrap(main: Callable[[list[str] | None], int]) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except WayRayError as err:
                if debug_enabled():
                    logging.getLogger(f"wayray.{program}").exception("fatal")
                report(program, err)
                return err.exit_code
            except KeyboardInterrupt:
                print(f"{program}: interrupted", file=sys.stderr)
                return EXIT_INTERRUPTED
            except BrokenPipeError:
                # Output piped into `head` and friends: not an error worth a traceback.
                sys.stderr.close()
                return EXIT_FAILURE

        return run

    return wrap
