"""The ``cmm-bt`` command line: one module per command, combined here.

Errors: a :class:`~cmm_bt.errors.CmmBtError` (bad usage, config or data) or a usage error of the
command line (unknown option, missing argument) prints one line on stderr and exits 2; anything
else exits 1, with a traceback only under ``--debug``.  Ctrl-C (SIGINT) prints ``interrupted`` and
exits 130, SIGTERM ``terminated`` and 143; both unwind normally, so nothing half-written stays behind.
Warnings are printed as one line each (``warning: ...``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
import warnings
from typing import Iterator

import typer

from cmm_bt.errors import CmmBtError

try:  # typer >= 0.20 ships its own copy of click; its exceptions are not click's
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as _click_exceptions

app = typer.Typer(
    name="cmm-bt",
    help="Plugin-based market-making backtester.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of internal errors.")) -> None:
    """Plugin-based market-making backtester."""


def _add_commands() -> None:
    from cmm_bt.cli import compare, data, plan, plugins, run, schema, study, sweep, validate

    for module in (run, compare, plan, sweep, study, validate, schema, plugins):
        app.command(name=module.NAME, help=module.__doc__)(module.command)
    app.add_typer(data.app, name="data")


def _add_plugin_commands() -> None:
    """Plugins may add commands (``cmm_bt_register_commands``); a broken plugin must not kill the CLI."""
    from cmm_bt.plugins import Hooks, build_plugin_manager

    try:
        Hooks(build_plugin_manager()).register_commands(app=app)
    except CmmBtError:
        pass  # the same error is raised again, as one line, by the command that needs the plugins
    except Exception as err:  # noqa: BLE001 - a plugin's register_commands hook failed
        sys.stderr.write(f"warning: plugin commands not added: {' '.join(f'{type(err).__name__}: {err}'.split())}\n")


def _fail(message: str, code: int) -> None:
    red, reset = ("\x1b[31m", "\x1b[0m") if sys.stderr.isatty() else ("", "")
    sys.stderr.write(f"{red}error:{reset} {' '.join(message.split())}\n")
    raise SystemExit(code)


_commands_added = False


class Interrupted(BaseException):
    """Raised in the main thread by SIGINT / SIGTERM while a command runs.  Not a ``KeyboardInterrupt``:
    the command-line library turns those into a silent exit code; this one reaches :func:`main`, and
    ``finally`` / ``except BaseException`` clean-ups run on the way."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum
        self.word = "interrupted" if signum == signal.SIGINT else "terminated"


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT / SIGTERM raise :class:`Interrupted` (unless ignored, e.g. in a background job)."""
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            if current in (signal.default_int_handler, signal.SIG_DFL):
                previous[sig] = signal.signal(sig, _raise_interrupted)
    except ValueError:  # not the main thread: leave the signals alone
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    (file or sys.stderr).write(f"warning: {text}\n")


def main(argv: list[str] | None = None) -> None:
    global _commands_added
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args
    if not _commands_added:
        _add_commands()
        _add_plugin_commands()
        _commands_added = True
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        with _signals():
            _main(args, debug)
    finally:
        warnings.showwarning = shown


def _main(args: list[str], debug: bool) -> None:
    try:
        rv = app(args=args, prog_name="cmm-bt", standalone_mode=False)
        raise SystemExit(rv if isinstance(rv, int) else 0)
    except Interrupted as err:
        sys.stderr.write(f"{err.word}\n")
        raise SystemExit(err.exit_code) from None
    except typer.Exit as err:
        raise SystemExit(err.exit_code) from None
    except _click_exceptions.NoArgsIsHelpError as err:  # `cmm-bt` or `cmm-bt data` alone: the help
        err.show()
        raise SystemExit(err.exit_code) from None
    except _click_exceptions.UsageError as err:  # unknown option, missing argument, bad value: exit 2
        command = err.ctx.command_path if err.ctx is not None else "cmm-bt"
        _fail(f"{err.format_message().rstrip('.')} (see '{command} --help')", 2)
    except _click_exceptions.ClickException as err:
        _fail(err.format_message(), err.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except CmmBtError as err:
        if debug:
            traceback.print_exc()
        _fail(str(err), err.exit_code)
    except Exception as err:  # noqa: BLE001 - the one place internal errors are turned into exit 1
        if debug:
            traceback.print_exc()
            raise SystemExit(1) from None
        _fail(f"internal error: {type(err).__name__}: {err} (run with --debug for a traceback)", 1)
