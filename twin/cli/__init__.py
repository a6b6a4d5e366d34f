"""The ``twin`` command line.

This package is the one place in ``twin`` that may compose ``ingest``, ``layers`` and
``dashboards``; every command is a thin wrapper over a Python function.
"""

from __future__ import annotations

import click

from twin import __version__
from twin.cli import (
    alerts,
    demo,
    events,
    fuse,
    ingest,
    risk,
    serve,
    supply,
    tokens,
    users,
    workspace,
    zones,
)
from twin.cli._common import TwinGroup

__all__ = ["cli", "main"]


@click.group(cls=TwinGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, prog_name="citytwin")
def cli() -> None:
    """citytwin: an H3-indexed city digital twin for emergency situational awareness.

    \b
    Typical session:
      twin demo-data demo-city --size small      write a synthetic city's source files
      twin init ws --name 示范市                  create a workspace
      twin layers list ws                         see what the workspace holds

    Every command takes --help; most take --json for machine-readable output.
    Exit codes: 0 success, 1 refused (see the message), 2 bad usage, 75 busy (retry),
    70 internal error.
    """


for module in (workspace, ingest, fuse, risk, zones, supply, alerts, events, users, tokens,
               serve, demo):
    module.register(cli)


def main() -> None:
    """Entry point of the ``twin`` console script."""
    cli(prog_name="twin")
