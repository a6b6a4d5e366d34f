"""``twin serve``: the dashboards server (cockpit, zone editor, layer catalog, OGC API)."""

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
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate (PEM); cookies are then Secure.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The private key of --tls-cert (PEM).")
@click.option("--behind-https", is_flag=True,
              help="Behind a reverse proxy that terminates HTTPS: trust its X-Forwarded-* "
                   "headers for the client address, and mark cookies Secure.")
def serve_cmd(workspace: Path, port: int, lang: str | None, address: str, num_procs: int,
              allow_origin: tuple[str, ...], tls_cert: str | None, tls_key: str | None,
              behind_https: bool) -> None:
    """Serve the dashboards of WORKSPACE: log in at /login, the cockpit is /cockpit.

    \b
    Wall screen: open /cockpit?kiosk=1 and log in once as a viewer; its session lasts
    security.session_days (30) and survives restarts (the cookie secret is kept in the
    workspace). `twin users WORKSPACE sessions list|revoke` shows and ends sessions.
    Nothing is loaded from other hosts (no CDN, web fonts or map tiles).
    """
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together: give both PEM files")
    from dashboards.app import serve

    ws = Workspace.open(workspace)
    url = f"{'https' if tls_cert else 'http'}://{address}:{port}/cockpit"
    procs = f", {num_procs} processes" if num_procs > 1 else ""
    serve(ws, port=port, address=address, lang=lang, show=False, num_procs=num_procs,
          allow_origin=list(allow_origin) or None, tls_cert=tls_cert, tls_key=tls_key,
          behind_https=behind_https,
          on_ready=lambda: click.echo(f"citytwin cockpit: {url} (log in at /login{procs})",
                                      err=True))


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(serve_cmd)
