"""State of the GIS staff's catalog page (no Panel here; the view is ``dashboards/catalog.py``).

The work is ``ingest.ingest_file`` (the same sandboxed ingest as ``twin ingest``),
``twin.catalog`` (freshness, exports), ``Workspace.rollback`` and ``twin.fuse.fuse``; this class
holds what the page shows and runs the long steps in a background thread, publishing progress
as parameters the view polls.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import param

from twin.errors import TwinError
from twin.users import User, require

__all__ = ["CatalogState"]

#: Kinds a department's file may be loaded as, with labels (zh, en).
KIND_LABELS: dict[str, tuple[str, str]] = {
    "buildings": ("楼栋", "buildings"), "facilities": ("设施", "facilities"),
    "population": ("人口", "population"), "cases": ("病例", "cases"),
    "stocks": ("物资库存", "stocks"), "roads": ("道路", "roads"),
    "boundaries": ("行政区划", "boundaries")}


#: Uploads left unpublished (refused, abandoned) are removed after this many hours.
UPLOAD_KEEP_HOURS = 24


def _sweep_uploads(folder: Path) -> None:
    """Remove uploads older than :data:`UPLOAD_KEEP_HOURS` (they hold departments' data)."""
    if not folder.is_dir():
        return
    cutoff = time.time() - UPLOAD_KEEP_HOURS * 3600
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


class CatalogState(param.Parameterized):
    """What one GIS user's catalog page shows and does."""

    lang = param.Selector(default="zh", objects=["zh", "en"])
    kind = param.Selector(default="buildings", objects=list(KIND_LABELS))
    layer_name = param.String(default="", doc="Target layer (default: the kind).")
    coords = param.Selector(default="wgs84", objects=["wgs84", "gcj02", "bd09"])
    upload = param.Dict(default=None, allow_None=True, doc="The last uploaded file.")
    busy = param.Boolean(default=False)
    stage = param.String(default="")
    done = param.Integer(default=0)
    total = param.Integer(default=0)
    report = param.Dict(default=None, allow_None=True, doc="The last report, as a dict.")
    message = param.String(default="")
    selected = param.String(default="", doc="The layer whose versions are shown.")
    mapping = param.Dict(default={}, doc="The mapping form: fields, value synonyms, dates "
                         "and units, as a MappingSpec's parts.")
    revision = param.Integer(default=0, doc="Bumped whenever the catalog changed.")

    def __init__(self, workspace: Any, *, user: User, **params: Any) -> None:
        require(user, "ingest_layers")
        super().__init__(**params)
        self.workspace, self.user = workspace, user
        self._thread: threading.Thread | None = None
        _sweep_uploads(Path(workspace.tmp_dir) / "uploads")

    # -- reading ------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per layer: current version, provenance and freshness."""
        from twin.catalog import freshness, get_meta

        out = []
        for info in self.workspace.layers():
            entry = info.current
            meta = get_meta(self.workspace, info.name)
            out.append({
                "layer": info.name, "kind": info.kind, "version": entry.version,
                "versions": info.versions, "rows": entry.row_count, "bounds": entry.bounds,
                "source": entry.source_name or "", "sha256": (entry.source_sha256 or "")[:12],
                "crs": entry.source_crs or "", "author": entry.author,
                "created_at": entry.created_at[:19].replace("T", " "),
                "title": meta.title_zh if self.lang == "zh" else meta.title_en,
                "department": meta.department,
                "freshness": freshness(self.workspace, info.name, meta=meta)})
        return out

    def versions(self, layer: str) -> list[dict[str, Any]]:
        return [v.to_dict() for v in self.workspace.versions(layer)]

    # -- uploads ------------------------------------------------------------------------
    def check(self) -> None:
        """Validate the uploaded file (a dry run), in the background."""
        self._start(dry_run=True)

    def publish(self) -> None:
        """Validate and publish the uploaded file, then fuse, in the background."""
        self._start(dry_run=False)

    def _start(self, *, dry_run: bool) -> None:
        if self.busy:
            return
        if not self.upload:
            self.message = ("先选择或拖入文件" if self.lang == "zh" else
                            "choose or drop a file first")
            return
        self.busy, self.report, self.stage, self.done, self.total = True, None, "", 0, 0
        self.message = ""
        self._thread = threading.Thread(target=self._run, args=(dry_run,), daemon=True,
                                        name="citytwin-catalog-ingest")
        self._thread.start()

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, int(done), int(total)

    def _run(self, dry_run: bool) -> None:
        from dashboards.catalog_http import upload_path
        from ingest import ingest_file

        mapping_file = None
        try:
            path = upload_path(self.workspace, self.upload["upload"])
            if self.mapping_toml():
                mapping_file = path.parent.parent / f"{path.parent.name}.mapping.toml"
                mapping_file.write_text(self.mapping_toml(), encoding="utf-8")
            report = ingest_file(
                self.workspace, path, kind=self.kind, name=self.layer_name.strip() or None,
                coords=self.coords, mapping=mapping_file, dry_run=dry_run,
                author=self.user.name, note="uploaded on the catalog page",
                on_progress=self._progress)
            self.report = {**report.to_dict(), "text_status": report.status}
            if report.status == "published":
                self.selected = report.layer
                self.stage = "fusing"
                self._fuse()
                self.stage = "fused"
                self.revision += 1
        except (TwinError, OSError, ValueError) as exc:
            self.message = str(exc)
        finally:
            if mapping_file is not None:
                mapping_file.unlink(missing_ok=True)
            self.busy = False
            if (self.report or {}).get("status") in ("published", "unchanged") and self.upload:
                # The uploaded copy goes once it is published; a refused one stays, so that
                # the mapping can be fixed and the same file checked again.
                folder = Path(self.workspace.tmp_dir) / "uploads" / self.upload["upload"]
                shutil.rmtree(folder, ignore_errors=True)
                self.upload = None

    def mapping_spec(self) -> Any:
        """The form's mapping as a ``MappingSpec`` (None when the form is empty)."""
        from ingest.mapping import MappingSpec

        parts = {k: {f: v for f, v in (self.mapping.get(k) or {}).items() if v}
                 for k in ("fields", "values", "dates", "units")}
        if not any(parts.values()):
            return None
        return MappingSpec(**parts)

    def mapping_toml(self) -> str:
        """The form's mapping as the TOML file ``twin ingest --mapping`` takes ("" if empty)."""
        from ingest.mapping import render_mapping

        spec = self.mapping_spec()
        return render_mapping(spec) if spec is not None else ""

    def _fuse(self) -> None:
        from twin.fuse import fuse

        fuse(self.workspace)

    # -- versions -----------------------------------------------------------------------
    def rollback(self, layer: str, version: int, note: str) -> None:
        """Make ``version`` of ``layer`` current again (audited with the note), then fuse."""
        require(self.user, "rollback_layers")
        self.selected = layer
        if not note.strip():
            self.message = ("回滚需要说明原因" if self.lang == "zh" else
                            "a rollback needs a note saying why")
            return
        try:
            entry = self.workspace.rollback(layer, version, author=self.user.name, note=note)
            self._fuse()
        except TwinError as exc:
            self.message = str(exc)
            return
        self.message = (f"{layer} 已回滚到第 {entry.version} 版" if self.lang == "zh" else
                        f"{layer} rolled back to version {entry.version}")
        self.revision += 1

    # -- metadata, differences, previews, downloads ---------------------------------------------
    def meta(self, layer: str) -> dict[str, Any]:
        """The metadata of ``layer`` as the form shows it (refresh interval as text)."""
        from twin.catalog import get_meta

        meta = get_meta(self.workspace, layer).to_dict()
        hours = meta["refresh_hours"]
        meta["refresh_hours"] = "" if hours is None else f"{hours:g}"
        return meta

    def save_meta(self, layer: str, form: dict[str, str]) -> bool:
        """Save the metadata form of ``layer`` (audited); False with a message when refused."""
        from twin.catalog import set_meta

        require(self.user, "ingest_layers")
        changes: dict[str, Any] = {k: (v or "").strip() for k, v in form.items()
                                   if k != "refresh_hours"}
        hours = (form.get("refresh_hours") or "").strip()
        try:
            changes["refresh_hours"] = float(hours) if hours else None
        except ValueError:
            self.message = (f"更新周期须为小时数（如 24），而不是 {hours!r}" if self.lang == "zh"
                            else f"the refresh interval is a number of hours (e.g. 24), not "
                            f"{hours!r}")
            return False
        try:
            set_meta(self.workspace, layer, actor=self.user.name, **changes)
        except TwinError as exc:
            self.message = str(exc)
            return False
        self.message = (f"{layer} 的元数据已保存" if self.lang == "zh" else
                        f"metadata of {layer} saved")
        self.revision += 1
        return True

    def diff(self, layer: str, old: int, new: int) -> dict[str, Any] | None:
        """What changed from version ``old`` to ``new`` of ``layer`` (None with a message)."""
        from twin.catalog import diff_versions

        try:
            return diff_versions(self.workspace, layer, old, new)
        except TwinError as exc:
            self.message = str(exc)
            return None

    def preview(self, layer: str, version: int | None = None) -> tuple[Any, Any] | None:
        """The preview map layer of a version of ``layer`` and its bounds.

        None (with a message) for a raster or a plain table, which have no shapes to draw.
        """
        import geopandas as gpd

        import layers

        entry = self.workspace.version(layer, version)
        if entry.format == "geotiff":
            self.message = ("栅格图层无矢量预览" if self.lang == "zh" else
                            "a raster layer has no vector preview")
            return None
        frame = self.workspace.read(layer, entry.version)
        if not isinstance(frame, gpd.GeoDataFrame) or not len(frame):
            self.message = ("该图层没有几何形状可预览" if self.lang == "zh" else
                            "this layer has no shapes to preview")
            return None
        title = (f"{layer} 第 {entry.version} 版", f"{layer} version {entry.version}")
        return layers.preview(frame, self.lang, title=title), entry.bounds

    def downloads(self) -> list[dict[str, str]]:
        """The fused facts per level and the zones this user may download (OGC collections)."""
        from twin.features import collections

        try:
            found = collections(self.workspace, self.user.role)
        except TwinError:
            return []
        return [{"id": c.id, "title": c.title} for c in found if c.kind in ("facts", "zones")]
