"""``twin serve``: the dashboards server (cockpit; zone editor and layer catalog to come)."""

from __future__ import annotations

from pathlib import Path

import click

from twin.store import Workspace

__all__ = ["register"]


@click.command("serve")
@click.argument("workspace", type=click.Path(path_type=Path))
@click.option("--port", type=int, default=5006, show_default=True, help="TCP port.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None,
              help="Label language (default: the city's language in twin.toml).")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--num-procs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes sharing the port (Linux); for many wall screens at once.")
@click.option("--allow-origin", multiple=True,
              help="Host[:port] browsers may reach the server as (repeatable; default the "
                   "address and localhost).")
def serve_cmd(workspace: Path, port: int, lang: str | None, address: str, num_procs: int,
              allow_origin: tuple[str, ...]) -> None:
    """Serve the dashboards of WORKSPACE: log in at /login, the cockpit is /cockpit.

    \b
    Wall screen: open /cockpit?kiosk=1 and log in once as a viewer; the signed session
    cookie keeps it logged in (30 days). Set TWIN_COOKIE_SECRET to keep sessions valid
    across restarts. Nothing is loaded from other hosts (no CDN, web fonts or map tiles).
    """
    from dashboards.app import serve

    ws = Workspace.open(workspace)
    url = f"http://{address}:{port}/cockpit"
    procs = f", {num_procs} processes" if num_procs > 1 else ""
    serve(ws, port=port, address=address, lang=lang, show=False, num_procs=num_procs,
          allow_origin=list(allow_origin) or None,
          on_ready=lambda: click.echo(f"citytwin cockpit: {url} (log in at /login{procs})",
                                      err=True))


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(serve_cmd)
