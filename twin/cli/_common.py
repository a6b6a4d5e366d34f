"""Conventions shared by every ``twin`` command.

- ``--help`` explains the command; ``--json`` switches the output to JSON for programs.
- Success exits 0. A failure prints one clear message (``error: ...``) on stderr, or a JSON
  object ``{"error": {...}}`` on stdout with ``--json``, and exits non-zero: 1 for a refused
  action, 75 when the action may succeed if retried, 70 for an internal error (set
  ``TWIN_DEBUG=1`` to see its traceback).
- Long work shows a progress bar on stderr (only on a terminal, never in the JSON).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from twin.errors import OutputError, TwinError, os_reason
from twin.i18n import bilingual

__all__ = ["EXIT_INTERNAL", "EXIT_RETRY", "TwinGroup", "WorkspaceFirstGroup", "emit",
           "json_option", "step_progress", "table", "writing"]

EXIT_REFUSED = 1
EXIT_RETRY = 75  # EX_TEMPFAIL
EXIT_INTERNAL = 70  # EX_SOFTWARE
_JSON_KEY = "twin.json"


class _Failure(click.ClickException):
    """A handled failure: one message, the right exit code, JSON when asked for."""

    def __init__(self, message: str, *, kind: str, exit_code: int, retryable: bool,
                 as_json: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code
        self.retryable = retryable
        self.as_json = as_json

    def show(self, file: Any = None) -> None:
        if self.as_json:
            click.echo(json.dumps({"error": {"type": self.kind, "message": self.message,
                                             "retryable": self.retryable}},
                                  ensure_ascii=False))
        click.echo(f"error: {self.message}", err=True)


class TwinGroup(click.Group):
    """A command group that turns exceptions into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TwinError as exc:
            raise _Failure(str(exc), kind=type(exc).__name__,
                           exit_code=EXIT_RETRY if exc.retryable else EXIT_REFUSED,
                           retryable=exc.retryable, as_json=_wants_json(ctx)) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("TWIN_DEBUG"):
                raise
            raise _Failure(f"internal error ({type(exc).__name__}: {exc}); this is a bug in "
                           "citytwin. Run again with TWIN_DEBUG=1 to see the traceback and "
                           "report it", kind="InternalError", exit_code=EXIT_INTERNAL,
                           retryable=False, as_json=_wants_json(ctx)) from None


class WorkspaceFirstGroup(click.Group):
    """A subcommand group that also accepts the workspace before the subcommand.

    ``twin zones WS propose`` and ``twin zones propose WS`` mean the same: the first form is
    how people say it, the second how every command takes its workspace.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if (len(args) >= 2 and args[0] not in self.commands and not args[0].startswith("-")
                and args[1] in self.commands):
            args = [args[1], args[0], *args[2:]]
        return super().parse_args(ctx, args)


def _wants_json(ctx: click.Context) -> bool:
    return bool(ctx.meta.get(_JSON_KEY))


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_JSON_KEY] = True
    return value


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--json`` to a command; the command receives ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=_set_json,
                        help="Print machine-readable JSON instead of text.")(func)


def emit(data: Any, as_json: bool, text: Callable[[], str] | str) -> None:
    """Print ``data`` as JSON, or the human-readable ``text``."""
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        click.echo(text() if callable(text) else text)


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Format rows as an aligned text table with bilingual headers (label keys)."""
    head = [bilingual(h) for h in headers]
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]

    def width(text: str) -> int:  # CJK characters take two columns in a terminal
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)

    widths = [max([width(h)] + [width(r[i]) for r in cells]) for i, h in enumerate(head)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v + " " * (w - width(v)) for v, w in zip(values, widths, strict=True))

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in cells])


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` while writing ``path`` (a ``--csv`` or export file) into an
    :class:`~twin.errors.OutputError` naming the path and the fix."""
    try:
        yield
    except TwinError:
        raise
    except OSError as exc:
        folder = path.absolute().parent
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        why = (f"{blocker} is a file, not a folder" if not blocker.is_dir()
               else f"the folder {folder} does not exist" if blocker != folder
               else os_reason(exc))
        raise OutputError(f"cannot write {path}: {why}; write to an existing folder you may "
                          "write to, or create it first") from None


@contextmanager
def step_progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int, str], None]]:
    """Yield an ``on_step(i, n, name)`` callback that draws a progress bar on stderr.

    ``i`` counts steps from 1 and is reported as each step starts; off a terminal each step
    is one line instead of a bar.
    """
    state: dict[str, Any] = {"bar": None, "done": 0}
    show = enabled and sys.stderr.isatty()

    def on_step(i: int, n: int, name: str) -> None:
        if not enabled:
            return
        if not show:
            click.echo(f"{label}: {name} ({i}/{n})", err=True)
            return
        if state["bar"] is None:
            state["bar"] = click.progressbar(length=n, label=label, file=sys.stderr,
                                             show_pos=True, item_show_func=lambda s: s)
            state["bar"].__enter__()
        state["bar"].update(i - 1 - state["done"], name)
        state["done"] = i - 1

    try:
        yield on_step
    finally:
        if state["bar"] is not None:
            state["bar"].update(state["bar"].length - state["done"], "done")
            state["bar"].__exit__(None, None, None)
