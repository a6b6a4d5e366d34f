"""Commands that make the demo city: ``demo-data`` and ``demo``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from twin.cli._common import emit, json_option, step_progress, table
from twin.store import Workspace

__all__ = ["register"]

_SIZES = ("small", "city", "megacity")


def _generate(out: Path, size: str, seed: int, overwrite: bool, as_json: bool) -> dict[str, Any]:
    from twin.demo import generate_demo_city

    with step_progress(f"demo city ({size})", enabled=not as_json) as on_step:
        return generate_demo_city(out, size=size, seed=seed, overwrite=overwrite,
                                  on_step=on_step)


def _files_table(manifest: dict[str, Any]) -> str:
    return table([(f["path"] + (f"#{f['layer']}" if f.get("layer") else ""), f["kind"],
                   f["format"], f.get("crs") or "", f.get("encoding") or "",
                   f.get("coords") or "", f.get("rows", ""))
                  for f in manifest["files"]],
                 ["file", "kind", "format", "crs", "encoding", "coords", "rows"])


def _summary(manifest: dict[str, Any]) -> str:
    t = manifest["totals"]
    return (f"residents {t['residents']:,} · buildings {t['buildings']:,} · facilities "
            f"{t['facilities']:,} · cases {t['cases']:,} · {t['districts']} districts / "
            f"{t['streets']} streets / {t['communities']} communities")


@click.command("demo-data")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--size", type=click.Choice(_SIZES), default="small", show_default=True,
              help="small: ~60k residents, seconds; city: ~1 million; megacity: ~25 million "
                   "over ~6,000 km² (for benchmarks).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed gives byte-identical files.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo city in OUT.")
@json_option
def demo_data_cmd(out: Path, size: str, seed: int, overwrite: bool, as_json: bool) -> None:
    """Write a synthetic but plausible Chinese city to OUT, as departments' files.

    Boundaries (GeoPackage, CGCS2000), buildings (zipped Shapefile in a Gauss-Kruger CRS,
    GBK), a population GeoTIFF (UTM), age groups (CSV), facilities (CSV in GCJ-02), 60 days of
    cases (GeoJSON), stocks (CSV) and roads (GeoPackage), plus OUT/manifest.json describing
    each file for scripted ingest.
    """
    manifest = _generate(out, size, seed, overwrite, as_json)
    emit(manifest, as_json, lambda: f"wrote the {size} demo city to {out}\n"
         f"{_summary(manifest)}\n\n{_files_table(manifest)}")


@click.command("demo")
@click.argument("directory", type=click.Path(path_type=Path), default=Path("citytwin-demo"))
@click.option("--size", type=click.Choice(_SIZES), default="city", show_default=True,
              help="Size of the demo city.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--serve/--no-serve", "serve_after", default=True, show_default=True,
              help="Open the cockpit server at the end.")
@click.option("--port", type=click.IntRange(1, 65535), default=5006, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to serve on (0.0.0.0 for every interface).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None,
              help="Label language of the cockpit (default: the workspace's).")
@json_option
def demo_cmd(directory: Path, size: str, seed: int, serve_after: bool, port: int,
             address: str, lang: str | None, as_json: bool) -> None:
    """Go from nothing to a loaded demo workspace in one command.

    Writes the demo city's source files to DIRECTORY/source (kept when they already match the
    size and seed), creates the workspace DIRECTORY/workspace, ingests every file of the
    manifest into it and fuses them into per-H3-cell facts. Running it again reuses what is
    there (unchanged files are not loaded twice, unchanged layers not fused again).
    """
    source, ws_path = directory / "source", directory / "workspace"
    manifest_path = source / "manifest.json"
    manifest = None
    if manifest_path.is_file():
        try:
            existing = json.loads(manifest_path.read_text(encoding="utf-8"))
            same = (existing["city"]["size"], existing["city"]["seed"]) == (size, seed)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            same = False  # not a demo city's manifest: generating refuses to touch the folder
        if same:
            manifest = existing
    generated = manifest is None
    if manifest is None:
        manifest = _generate(source, size, seed, overwrite=True, as_json=as_json)
    city = manifest["city"]
    if (ws_path / "twin.toml").is_file():
        ws = Workspace.open(ws_path)
    else:
        ws = Workspace.init(ws_path, city["name"], name_en=city.get("name_en", ""),
                            bbox=tuple(city["bbox"]))
    from ingest import ingest_manifest

    with step_progress("ingest", enabled=not as_json) as on_step:
        reports = ingest_manifest(ws, manifest_path, author="demo", on_file=on_step)
    refused = [r for r in reports if r.status == "refused"]
    fused, prepared = None, None
    if not refused:
        from dashboards.demo import prepare_demo
        from twin.fuse import fuse

        with step_progress("fuse", enabled=not as_json) as on_step:
            fused = fuse(ws, author="demo", on_step=on_step)
        prepared = prepare_demo(ws)
        from twin.events.demo import prepare_events

        prepared["events"] = prepare_events(ws, source, manifest)
    layers = ws.layers()
    data = {"source": str(source), "generated": generated, "workspace": str(ws.root),
            "totals": manifest["totals"], "ingest": [r.to_dict() for r in reports],
            "fuse": fused.to_dict() if fused else None, "prepared": prepared,
            "layers": [layer.to_dict() for layer in layers]}
    emit(data, as_json, lambda: "\n".join([
        f"demo city 示范市 ({size}, seed {seed}): {_summary(manifest)}",
        f"source files 源数据: {source} ({'generated' if generated else 'reused'})",
        f"workspace 工作空间: {ws.root}",
        "",
        table([(r.layer, r.kind, r.status, r.info.get("rows_kept", ""), len(r.warnings))
               for r in reports], ["layer", "kind", "status", "rows", "warnings"]),
        *[r.to_text() for r in refused],
        "" if fused is None else f"\nfacts 事实: {fused.status} · "
        f"{fused.summary.get('cells', 0):,} cells · residents "
        f"{fused.summary.get('totals', {}).get('residents', 0):,.0f} · see `twin facts "
        f"{ws.root}`",
        *([] if prepared is None else _prepared_text(prepared, ws)),
    ]))
    if refused:
        click.echo(f"error: {', '.join(r.source for r in refused)} refused (listed above); "
                   "this is the generated demo city, so please report it", err=True)
        raise SystemExit(1)
    if serve_after:
        from dashboards.app import serve

        click.echo(f"\ncockpit 数字驾驶舱: http://{address}:{port}/cockpit (Ctrl-C to stop)",
                   err=True)
        serve(ws, port=port, address=address, lang=lang)


def _prepared_text(prepared: dict[str, Any], ws: Workspace) -> list[str]:
    account = prepared["account"]
    login = (f"log in as {account['user']} / {account['password']} (shown once; change it with "
             f"`twin users {ws.root} passwd {account['user']}`)" if account["password"] else
             f"log in as {account['user']} (set its password with `twin users {ws.root} passwd "
             f"{account['user']}`)")
    return [f"zones 防控区: {len(prepared['activated'])} activated · dispatch routes "
            f"{prepared['dispatch_routes']} · new alerts {prepared['alerts_new']}",
            f"viewer account 查看账号: {login}",
            *([f"grid events 网格事件: {ev['events']} from the hotline export, {ev['closed']} "
               f"closed, {ev['escalated']} overdue escalated · grid staff {ev['staff']} · see "
               f"`twin events {ws.root} list`"] if (ev := prepared.get("events")) else []),
            *[f"{role} account {label}: {name} / {pw} (shown once) → /{page}" if pw else
              f"{role} account {label}: {name} (exists)"
              for name, pw in (prepared.get("events") or {}).get("accounts", {}).items()
              for role, label, page in [{"dispatch": ("dispatcher", "调度员账号", "events"),
                                         "grid": ("grid worker", "网格员账号", "tasks")}[name]]]]


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``twin`` group."""
    cli.add_command(demo_data_cmd)
    cli.add_command(demo_cmd)
