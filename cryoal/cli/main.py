"""The ``cryoal`` command: a thin shell over the library.

Every sub-command lives in a module ``cryoal/cli/<topic>_commands.py`` that defines
``register(app)``; this module discovers them, so adding a command never touches this
file. User errors (``ValueError``, ``FileNotFoundError``, ...) raised anywhere in the
library become one line on stderr and exit code 2; ``--debug`` shows the traceback.

A full disk (``ENOSPC``/``EDQUOT``) is one line naming the output, exit code 2. Ctrl-C
(SIGINT) and SIGTERM raise an exception in the running command, so every ``finally`` and
temp-file cleanup runs; the command then exits with 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import pkgutil
import re
import signal
import sys
import traceback
import warnings
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

import typer
from typer.exceptions import Abort, TyperException

import cryoal
from cryoal.io.interrupts import Terminated

#: Exceptions that mean "the input or the request is wrong", not "cryoal is broken".
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

#: Exit code for user errors (same as a usage error).
EXIT_USER_ERROR = 2


def _disk_full_line(exc: OSError) -> str:
    reason = "no space left on device" if exc.errno == errno.ENOSPC else "disk quota exceeded"
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return (
        f"{where}{reason}; the output was not written; free some space (or write to "
        "another disk) and re-run"
    )


app = typer.Typer(
    name="cryoal",
    help="Active learning for cryo-ET subtomograms: simulate, extract, train, score, label.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts are plain: "[default: ...]" must not be read as markup
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"cryoal {cryoal.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks and debug logging."),
    events: str = typer.Option(
        "text",
        "--events",
        help="Progress as 'text' (bars on a terminal, lines in a log) or 'json' (one JSON "
        "object per line on stdout, for programs that run cryoal as a job).",
    ),
) -> None:
    """cryoal: label fewer subtomograms, train better models."""
    from cryoal.cli.progress import use_json_events

    if events not in ("text", "json"):
        raise typer.BadParameter(f"--events {events!r}: choose text or json")
    use_json_events(sys.stdout if events == "json" else None)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register_commands() -> None:
    import cryoal.cli as cli_package

    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda m: m.name):
        if info.name.endswith("_commands"):
            module = importlib.import_module(f"cryoal.cli.{info.name}")
            module.register(app)


_register_commands()


#: numpy scalar reprs (``np.float64(0.448)``) that leak into messages through containers.
_NUMPY_REPR = re.compile(r"\bnp\.(?:float|int|uint|bool|str|complex)\w*\(([^()]*)\)")


def _clean(text: str) -> str:
    """One line, numbers as a person writes them (``np.float64(0.5)`` -> ``0.5``)."""
    return _NUMPY_REPR.sub(r"\1", " ".join(text.split()))


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    return _clean(text) or type(exc).__name__


#: Packages whose warnings are cryoal's own (shown as ``cryoal: warning: ...`` lines).
_OWN_PACKAGES = ("cryoal", "cryoal_napari")
#: The same as a ``warnings`` filter's module pattern (matched against a module's name).
_OWN_MODULES = r"(cryoal|cryoal_napari)(\.|$)"
#: Modules whose frames sit between ``warnings.warn`` and a ``showwarning`` hook.
_WARNINGS_MODULES = ("warnings", "_py_warnings")


def _is_own_module(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in _OWN_PACKAGES)


def _issuing_module(frame: FrameType | None) -> str:
    """``__name__`` of the code that called ``warnings.warn``, from a ``showwarning`` hook's
    caller frame up (the frames of the warnings module itself are skipped)."""
    while frame is not None and frame.f_globals.get("__name__") in _WARNINGS_MODULES:
        frame = frame.f_back
    return "" if frame is None else str(frame.f_globals.get("__name__", ""))


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show cryoal's own warnings as one ``cryoal: warning: ...`` line each on stderr.

    A warning is cryoal's when code of ``cryoal`` or ``cryoal_napari`` issued it and it is
    a ``UserWarning``; each is shown (none is dropped as a repeat), after the command.
    Every other warning (third-party deprecation notices, NumPy's runtime warnings, ...)
    goes through Python's own filters and display, as it would without cryoal.
    """
    caught: list[str] = []
    with warnings.catch_warnings():
        show_other = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            issuer = _issuing_module(sys._getframe(1))
            if issubclass(category, UserWarning) and _is_own_module(issuer):
                caught.append(_clean(str(message)))
            else:
                show_other(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        warnings.filterwarnings("always", category=UserWarning, module=_OWN_MODULES)
        try:
            yield
        finally:
            for text in caught:
                print(f"cryoal: warning: {text}", file=sys.stderr)


def _usage_error(exc: TyperException) -> int:
    """The parser refused the command line: one ``cryoal: error: ...`` line, exit 2."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: show its help
        print(exc.format_message(), file=sys.stderr)
        return int(exc.exit_code)
    ctx = getattr(exc, "ctx", None)
    message = exc.format_message().replace("Value error, ", "")
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    print(f"cryoal: error: {_clean(message)}{hint}", file=sys.stderr)
    return int(exc.exit_code)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (without the program name); return the exit code."""
    from cryoal.cli.progress import use_json_events

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _run_reporting_errors(argv)
    finally:  # --events json holds for this command only (run() also runs in-process)
        use_json_events(None)


def _run_reporting_errors(argv: list[str]) -> int:
    """:func:`run` without resetting the progress mode: errors become exit codes."""
    debug = "--debug" in argv
    try:
        return _run_app(argv)
    except TyperException as exc:
        return _usage_error(exc)
    except Abort as exc:
        return _aborted(exc)
    except SystemExit as exc:
        return _exit_code(exc)
    except OSError as exc:
        return _os_error(exc, debug)
    except USER_ERRORS as exc:
        if debug:
            traceback.print_exc()
        print(f"cryoal: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:  # a bug in cryoal, not in the user's input
        if debug:
            traceback.print_exc()
        return _internal_error(exc)


def _run_app(argv: list[str]) -> int:
    """Call the typer app; the exit code it returns (an interrupt it swallowed included)."""
    with warnings_as_lines():
        code = app(args=argv, prog_name="cryoal", standalone_mode=False)
    if code == 128 + signal.SIGINT and (signum := _received_signal()) is not None:
        # typer turns KeyboardInterrupt (Ctrl-C, or SIGTERM) into a silent exit 130
        return _interrupted(KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum))
    return code if isinstance(code, int) else 0


def _aborted(exc: Abort) -> int:
    """click turns Ctrl-C (and SIGTERM, raised as KeyboardInterrupt) into Abort."""
    if (interrupt := _interrupt_cause(exc)) is not None:
        return _interrupted(interrupt)
    print("cryoal: aborted", file=sys.stderr)
    return 1


def _exit_code(exc: SystemExit) -> int:
    """The exit code of a ``SystemExit`` (an interrupt behind it reported as such)."""
    if (interrupt := _interrupt_cause(exc)) is not None:
        return _interrupted(interrupt)
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def _os_error(exc: OSError, debug: bool) -> int:
    """A full disk or a user's file problem: one error line, exit 2; anything else: a bug."""
    from cryoal.io.atomic import DISK_FULL_ERRNOS

    if debug:
        traceback.print_exc()
    if exc.errno in DISK_FULL_ERRNOS:
        print(f"cryoal: error: {_disk_full_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    if isinstance(exc, USER_ERRORS):
        print(f"cryoal: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    return _internal_error(exc)


def _received_signal() -> int | None:
    from cryoal.io import interrupts

    return interrupts.received()


def _interrupt_cause(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM behind an exception click raised instead of it, if any."""
    cause = exc.__cause__ or exc.__context__
    while cause is not None and not isinstance(cause, KeyboardInterrupt):
        cause = cause.__cause__ or cause.__context__
    return cause


def _interrupted(exc: KeyboardInterrupt) -> int:
    from cryoal.io import interrupts

    interrupts.clear()
    if isinstance(exc, Terminated):
        print("cryoal: terminated by SIGTERM", file=sys.stderr)
        return 128 + exc.signum
    print("cryoal: interrupted by SIGINT (Ctrl-C)", file=sys.stderr)
    return 128 + signal.SIGINT


def _internal_error(exc: BaseException) -> int:
    print(
        f"cryoal: internal error: {type(exc).__name__}: {_one_line(exc)} "
        "(rerun with --debug for the traceback, and please report it)",
        file=sys.stderr,
    )
    return 1


def main() -> None:
    """Console-script entry point."""
    from cryoal.io.interrupts import install_handlers

    install_handlers()
    sys.exit(run())
