"""The GIS staff's catalog page ``/catalog`` (a thin view over ``CatalogState``).

Left: every layer with its current version, provenance and a freshness badge, and the chosen
layer's versions with downloads and rollback. Right: the upload box (drag and drop, streamed to
``/catalog/upload`` with its progress), the kind and options, 检查 check (a dry run) and 发布
publish, the ingest's progress by stage, and the report grouped by code with the offending
records. Everything from a file is shown as text (escaped), never rendered.
"""

from __future__ import annotations

import html
import io
from typing import Any, ClassVar

import panel as pn
import param
from panel.custom import JSComponent

from dashboards.catalog_state import KIND_LABELS, CatalogState
from dashboards.styles import TAB_STYLES

__all__ = ["CatalogPage", "UploadBox"]

CSS = """
:host { font-family: "Noto Sans CJK SC", "Microsoft YaHei", system-ui, sans-serif;
  color: #e8eaf0; font-size: 15px; }
table.ct-table { border-collapse: collapse; width: 100%; }
.ct-table th, .ct-table td { border-bottom: 1px solid #2a3348; padding: 5px 8px; text-align: left;
  vertical-align: top; }
.ct-table th { color: #aab3c5; font-weight: 600; }
.ct-badge { padding: 2px 8px; border-radius: 10px; font-size: 13px; white-space: nowrap; }
.ct-fresh { background: #1f6f43; } .ct-due { background: #8a6d1a; }
.ct-overdue { background: #a33a3a; } .ct-unknown { background: #3a4257; }
.ct-verdict { font-size: 18px; font-weight: 700; margin: 6px 0 10px; }
.ct-refused-line { color: #ff8a8a; } .ct-ok-line { color: #7ee2a8; }
.ct-problem { margin: 8px 0 12px; } .ct-code { font-family: monospace; color: #9fd3ff; }
.ct-error .ct-code { color: #ff8a8a; }
.ct-muted { color: #8d97ab; font-size: 13px; } .ct-nowrap { white-space: nowrap; }
a { color: #9fd3ff; }
"""

_LABELS = {
    "catalog": ("图层目录", "Layer catalog"), "upload": ("上传数据", "Upload a file"),
    "check": ("检查（不发布）", "Check (dry run)"), "publish": ("检查并发布", "Check and publish"),
    "kind": ("数据类型", "Kind"),
    "layer_name": ("图层名（默认同类型）", "Layer name (default: kind)"),
    "coords": ("坐标偏移", "Coordinate offset"), "versions": ("版本", "Versions"),
    "rollback": ("回滚到此版本", "Roll back to this version"), "note": ("回滚原因", "Why"),
    "report": ("校验报告", "Report"), "no_layers": ("暂无图层", "No layers yet"),
    "drop": ("拖入文件，或点击选择", "Drop a file here, or click to choose"),
    "limit": ("单个文件不超过 {mb} MB；Shapefile 请压缩为 .zip", "At most {mb} MB per file; "
              "zip a Shapefile's parts"),
    "published": ("已发布", "published"), "validated": ("校验通过（未发布）",
                                                       "valid (dry run, nothing published)"),
    "refused": ("已拒绝，未发布任何内容", "refused, nothing published"),
    "unchanged": ("内容未变（已是当前版本）", "unchanged: already the current version"),
    "errors": ("错误", "errors"), "warnings": ("警告", "warnings"), "rows": ("记录", "records"),
    "ids": ("编号", "ids"), "download": ("下载", "Download"), "fusing": ("融合中", "fusing"),
    "mapping": ("字段映射（修正后重新检查）", "Field mapping (fix, then check again)"),
    "auto": ("（自动识别）", "(guess)"), "date_format": ("日期格式，如 %d/%m/%Y",
                                                     "date format, e.g. %d/%m/%Y"),
    "unit": ("单位，如 ft、斤", "unit, e.g. ft"),
    "apply": ("按此映射检查", "Check with this mapping"),
    "mapping_file": ("下载映射文件 mapping.toml", "Download mapping.toml"),
    "synonyms": ("取值对照，如 阳性=confirmed; 疑似=suspected",
                 "value synonyms, e.g. 阳性=confirmed; 疑似=suspected"),
    "layer": ("图层", "Layer"), "tab_versions": ("版本与回滚", "Versions"),
    "tab_diff": ("版本差异", "Difference"),
    "tab_meta": ("元数据", "Metadata"), "tab_preview": ("预览地图", "Preview map"),
    "tab_downloads": ("下载事实与封控区", "Facts and zones"),
    "diff_old": ("旧版本", "Older version"), "diff_new": ("新版本", "Newer version"),
    "diff_go": ("比较", "Compare"), "added": ("新增", "added"), "removed": ("删除", "removed"),
    "changed": ("变更", "changed"), "bounds": ("范围", "bounds"), "totals": ("合计", "totals"),
    "by_key": ("按 {field} 对应", "matched by {field}"),
    "by_position": ("按行序对应（该类型无编号字段）", "matched by position (no key field)"),
    "title_zh": ("标题（中文）", "Title (Chinese)"),
    "title_en": ("标题（英文）", "Title (English)"),
    "department": ("部门", "Department"), "contact": ("联系人", "Contact"),
    "description_zh": ("说明（中文）", "Description (Chinese)"),
    "description_en": ("说明（英文）", "Description (English)"),
    "licence": ("许可", "Licence"),
    "refresh_hours": ("更新周期（小时，空=按类型默认）",
                      "Refresh interval (hours; empty: the kind's default)"),
    "save_meta": ("保存元数据", "Save metadata"),
    "preview_version": ("预览版本", "Version to preview"), "preview_go": ("显示", "Show"),
    "window": ("病例日期窗口（可空），如 2026-03-15 或 2026-03-01/2026-03-15",
               "case date window (optional), e.g. 2026-03-15 or 2026-03-01/2026-03-15"),
    "ogc": ("其他部门的 GIS 可直接读取 OGC API Features：{url}（令牌由管理员用 twin tokens "
            "add 发放）", "Other departments' GIS can read the OGC API Features at {url} (an "
                         "administrator issues a token with twin tokens add)"),
}
_STAGES = {"fusing": ("融合数据…", "fusing the layers…"),
           "fused": ("已发布并完成融合：驾驶舱已更新", "published and fused: the cockpit shows it")}


def _t(key: str, lang: str, **kwargs: Any) -> str:
    zh, en = _LABELS[key]
    return (zh if lang == "zh" else en).format(**kwargs)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


class UploadBox(JSComponent):
    """A drop zone that streams the file to ``/catalog/upload`` with its upload ticket."""

    ticket = param.String(default="")
    max_mb = param.Number(default=2048)
    label = param.String(default="")
    sent = param.Number(default=0.0, doc="Share of the file sent (0-1).")
    upload = param.Dict(default=None, allow_None=True, doc="The server's answer.")
    error = param.String(default="")

    _stylesheets: ClassVar[list[str]] = ["""
    .ct-drop { display: block; border: 2px dashed #4f8cff; border-radius: 10px; padding: 22px;
      text-align: center; color: #c9d3e6; cursor: pointer; font-size: 15px; }
    .ct-drop.ct-over { background: #1b2a4a; }
    .ct-sent { height: 6px; background: #4f8cff; width: 0; margin-top: 6px; }
    """]

    _esm = """
    export function render({ model, el }) {
      const box = document.createElement("label");
      box.className = "ct-drop";
      const text = document.createElement("div");
      text.className = "ct-drop-text";
      text.textContent = model.label;
      const input = document.createElement("input");
      input.type = "file";
      input.className = "ct-upload-input";
      input.style.display = "none";
      const bar = document.createElement("div");
      bar.className = "ct-sent";
      box.append(text, input);
      el.append(box, bar);
      function send(file) {
        model.error = "";
        model.upload = null;
        if (file.size > model.max_mb * 1048576) {
          model.error = `${file.name}: ${(file.size / 1048576).toFixed(1)} MB > ${model.max_mb} MB`;
          return;
        }
        text.textContent = file.name;
        const xhr = new XMLHttpRequest();
        xhr.open("POST", "/catalog/upload?name=" + encodeURIComponent(file.name));
        xhr.setRequestHeader("X-Citytwin-Upload", model.ticket);
        xhr.upload.onprogress = (e) => {
          if (e.lengthComputable) {
            bar.style.width = (100 * e.loaded / e.total) + "%";
            model.sent = e.loaded / e.total;
          }
        };
        xhr.onload = () => {
          let body = {};
          try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
          if (xhr.status === 200) { model.upload = body; model.sent = 1; }
          else { model.error = body.description || ("HTTP " + xhr.status); }
        };
        xhr.onerror = () => { model.error = "upload failed (network)"; };
        xhr.send(file);
      }
      input.addEventListener("change", () => { if (input.files.length) send(input.files[0]); });
      box.addEventListener("dragover", (e) => {
        e.preventDefault(); box.classList.add("ct-over");
      });
      box.addEventListener("dragleave", () => box.classList.remove("ct-over"));
      box.addEventListener("drop", (e) => {
        e.preventDefault(); box.classList.remove("ct-over");
        if (e.dataTransfer.files.length) send(e.dataTransfer.files[0]);
      });
    }
    """


class CatalogPage(pn.viewable.Viewer):
    """The page's layout and its callbacks (which delegate to the state)."""

    def __init__(self, state: CatalogState, ticket: str, **params: Any) -> None:
        super().__init__(**params)
        self.state = s = state
        lang = s.lang
        max_mb = float(s.workspace.config.ingest_limits["max_file_mb"])
        self._box = UploadBox(ticket=ticket, max_mb=max_mb, label=_t("drop", lang),
                              sizing_mode="stretch_width")
        self._box.param.watch(self._uploaded, ["upload", "error"])
        self._kind = pn.widgets.Select(
            name=_t("kind", lang), value=s.kind,
            options={f"{zh} {en}": k for k, (zh, en) in KIND_LABELS.items()}, width=220,
            css_classes=["ct-kind"])
        self._name = pn.widgets.TextInput(name=_t("layer_name", lang), width=220)
        self._coords = pn.widgets.Select(
            name=_t("coords", lang), value="wgs84", width=220,
            options={"WGS84 无偏移": "wgs84", "GCJ-02 高德/腾讯": "gcj02", "BD-09 百度": "bd09"})
        self._check = pn.widgets.Button(name=_t("check", lang), css_classes=["ct-check"],
                                        width=160)
        self._publish = pn.widgets.Button(name=_t("publish", lang), css_classes=["ct-publish"],
                                          button_type="primary", width=160)
        self._check.on_click(lambda _: self._go(s.check))
        self._publish.on_click(lambda _: self._go(s.publish))
        self._progress = pn.indicators.Progress(value=0, max=100, active=False,
                                                sizing_mode="stretch_width", visible=False)
        self._status = pn.pane.HTML("", stylesheets=[CSS], css_classes=["ct-catalog-status"])
        self._report = pn.pane.HTML("", stylesheets=[CSS], css_classes=["ct-report"],
                                    sizing_mode="stretch_width")
        self._table = pn.pane.HTML("", stylesheets=[CSS], css_classes=["ct-catalog-table"],
                                   sizing_mode="stretch_width")
        self._layer = pn.widgets.Select(name=_t("layer", lang), width=220,
                                        css_classes=["ct-layer-select"])
        self._layer.param.watch(lambda e: self._show_versions(), "value")
        self._versions = pn.pane.HTML("", stylesheets=[CSS], css_classes=["ct-versions"],
                                      sizing_mode="stretch_width")
        self._rollback_to = pn.widgets.Select(name=_t("rollback", lang), width=220,
                                              css_classes=["ct-rollback-to"])
        self._note = pn.widgets.TextInput(name=_t("note", lang), width=260,
                                          css_classes=["ct-rollback-note"])
        self._rollback = pn.widgets.Button(name=_t("rollback", lang), width=200,
                                           css_classes=["ct-rollback"])
        self._rollback.on_click(self._do_rollback)
        self._diff_old = pn.widgets.Select(name=_t("diff_old", lang), width=160,
                                           css_classes=["ct-diff-old"])
        self._diff_new = pn.widgets.Select(name=_t("diff_new", lang), width=160,
                                           css_classes=["ct-diff-new"])
        self._diff_go = pn.widgets.Button(name=_t("diff_go", lang), width=120,
                                          css_classes=["ct-diff-go"])
        self._diff_go.on_click(self._do_diff)
        self._diff = pn.pane.HTML("", stylesheets=[CSS], css_classes=["ct-diff"],
                                  sizing_mode="stretch_width")
        self._meta_widgets = {
            key: (pn.widgets.TextAreaInput if key.startswith("description") else
                  pn.widgets.TextInput)(name=_t(key, lang), css_classes=[f"ct-meta-{key}"],
                                        width=340, **({"height": 80} if key.startswith(
                                            "description") else {}))
            for key in ("title_zh", "title_en", "department", "contact", "licence",
                        "refresh_hours", "description_zh", "description_en")}
        self._meta_save = pn.widgets.Button(name=_t("save_meta", lang), width=160,
                                            button_type="primary", css_classes=["ct-meta-save"])
        self._meta_save.on_click(self._do_save_meta)
        self._preview_version = pn.widgets.Select(name=_t("preview_version", lang), width=160,
                                                  css_classes=["ct-preview-version"])
        self._preview_go = pn.widgets.Button(name=_t("preview_go", lang), width=120,
                                             css_classes=["ct-preview-go"])
        self._preview_go.on_click(self._do_preview)
        self._preview = pn.Column(sizing_mode="stretch_width", css_classes=["ct-preview"])
        self._window = pn.widgets.TextInput(name=_t("window", lang), width=460,
                                            css_classes=["ct-window"])
        self._window.param.watch(lambda e: self._show_downloads(), "value")
        self._downloads = pn.pane.HTML("", stylesheets=[CSS], css_classes=["ct-downloads"],
                                       sizing_mode="stretch_width")
        self._shown_layer = ""
        self._form_key: tuple[str, tuple[str, ...]] | None = None
        self._poll = None
        self._form = pn.Column(sizing_mode="stretch_width", css_classes=["ct-mapping"])
        self._form_widgets: dict[tuple[str, str], Any] = {}
        self._refresh()

    def start_callbacks(self) -> None:
        """Nothing runs until a user acts (called on load, like the other pages)."""

    # -- callbacks ---------------------------------------------------------------------
    def _uploaded(self, event: Any) -> None:
        if self._box.error:
            self._status.object = f'<div class="ct-refused-line">{_e(self._box.error)}</div>'
            return
        if self._box.upload:
            self.state.upload = dict(self._box.upload)
            self.state.mapping, self.state.report = {}, None  # a new file: a new mapping
            self._form.objects, self._report.object, self._form_key = [], "", None
            got = self._box.upload
            self._status.object = (f'<div class="ct-muted">{_e(got.get("name"))} · '
                                   f'{int(got.get("bytes", 0)) / 2**20:,.1f} MB ✓</div>')

    def _go(self, action: Any) -> None:
        s = self.state
        s.kind, s.layer_name, s.coords = self._kind.value, self._name.value, self._coords.value
        action()
        if s.busy and self._poll is None:
            self._progress.visible, self._progress.active = True, True
            self._poll = pn.state.add_periodic_callback(self._tick, period=300)
        self._tick()

    def _tick(self) -> None:
        from ingest import STAGES

        s = self.state
        # One update for the browser: the verdict, the form and the catalog together.
        with pn.io.hold():
            stages = {**STAGES, **_STAGES}
            # "fused" is shown with the refreshed catalog, in the tick that sees the work done.
            if s.stage and not (s.stage == "fused" and s.busy):
                zh, en = stages.get(s.stage, (s.stage, s.stage))
                count = f" {s.done:,}" + (f" / {s.total:,}" if s.total else "") if s.done else ""
                self._status.object = (f'<div class="ct-stage">{_e(zh if s.lang == "zh" else en)}'
                                       f'{_e(count)}</div>')
                if s.total:
                    self._progress.value = min(100, int(100 * s.done / s.total))
            if s.message:
                self._status.object = f'<div class="ct-refused-line">{_e(s.message)}</div>'
            if not s.busy:
                if self._poll is not None:
                    self._poll.stop()
                    self._poll = None
                self._progress.visible = False
                if s.report and not s.message and s.stage != "fused":
                    self._status.object = ""  # the verdict below says it; no stale stage
                self._report.object = self._report_html(s.report)
                self._build_form(s.report)
                self._refresh()

    def _build_form(self, report: dict[str, Any] | None) -> None:
        """The mapping form for the kind, from the columns the file turned out to have."""
        from ingest.mapping import format_value_pairs
        from ingest.values import allowed_values
        from twin.schema import get_kind

        info = (report or {}).get("info", {})
        columns = info.get("source_columns")
        if not columns:
            return
        key = (report["kind"], tuple(map(str, columns)))
        if key == self._form_key and self._form.objects:
            return  # the same file checked again: keep the form as the user left it
        self._form_key = key
        s, lang = self.state, self.state.lang
        kind = get_kind(report["kind"])
        chosen = info.get("mapping", {})
        current = s.mapping or {}
        auto = _t("auto", lang)
        rows, self._form_widgets = [], {}
        for f in (*kind.required, *kind.optional):
            label_text = f"{f.zh} {f.name}" + (" *" if f in kind.required else "")
            pick = pn.widgets.Select(
                name=label_text, options={auto: "", **{str(c): str(c) for c in columns}},
                value=(current.get("fields", {}).get(f.name) or ""), width=200,
                css_classes=[f"ct-map-{f.name}"])
            self._form_widgets[("fields", f.name)] = pick
            extra: list[Any] = []
            if f.dtype == "date":
                box = pn.widgets.TextInput(
                    name=_t("date_format", lang), width=200, css_classes=[f"ct-date-{f.name}"],
                    value=current.get("dates", {}).get(f.name, ""))
                self._form_widgets[("dates", f.name)] = box
                extra.append(box)
            elif f.unit:
                box = pn.widgets.TextInput(
                    name=_t("unit", lang), width=160, css_classes=[f"ct-unit-{f.name}"],
                    value=current.get("units", {}).get(f.name, ""))
                self._form_widgets[("units", f.name)] = box
                extra.append(box)
            codes = allowed_values(kind.name, f.name)
            if codes:
                box = pn.widgets.TextInput(
                    name=_t("synonyms", lang), width=320, css_classes=[f"ct-values-{f.name}"],
                    value=format_value_pairs(current.get("values", {}).get(f.name, {})),
                    placeholder=" · ".join(codes))
                self._form_widgets[("values", f.name)] = box
                extra.append(box)
            guessed = chosen.get(f.name)
            note = pn.pane.HTML(f'<div class="ct-muted">{_e("← " + guessed) if guessed else ""}'
                                "</div>", stylesheets=[CSS], width=160)
            rows.append(pn.Row(pick, *extra, note))
        apply = pn.widgets.Button(name=_t("apply", lang), css_classes=["ct-apply-mapping"],
                                  width=200)
        apply.on_click(self._apply_mapping)
        download = pn.widgets.FileDownload(
            callback=lambda: io.BytesIO(self.state.mapping_toml().encode("utf-8")),
            filename="mapping.toml", label=_t("mapping_file", lang), width=240,
            css_classes=["ct-mapping-download"])
        self._form.objects = [pn.pane.HTML(f"<h4>{_t('mapping', lang)}</h4>",
                                           stylesheets=[CSS]), *rows,
                              pn.Row(apply, download)]

    def _apply_mapping(self, _: Any) -> None:
        from ingest.errors import MappingError
        from ingest.mapping import parse_value_pairs

        mapping: dict[str, dict[str, Any]] = {"fields": {}, "values": {}, "dates": {},
                                              "units": {}}
        for (table, name), widget in self._form_widgets.items():
            value = (widget.value or "").strip()
            if not value:
                continue
            if table == "values":
                try:
                    mapping[table][name] = parse_value_pairs(value)
                except MappingError as exc:
                    self._status.object = (f'<div class="ct-refused-line">{_e(name)}: '
                                           f"{_e(exc)}</div>")
                    return
            else:
                mapping[table][name] = value
        self.state.mapping = mapping
        self._go(self.state.check)

    def _do_rollback(self, _: Any) -> None:
        if self._layer.value and self._rollback_to.value:
            self.state.rollback(self._layer.value, int(self._rollback_to.value),
                                self._note.value)
            self._status.object = f'<div class="ct-stage">{_e(self.state.message)}</div>'
            self._note.value = ""
            self._refresh()

    def _do_diff(self, _: Any) -> None:
        layer = self._layer.value
        if not (layer and self._diff_old.value and self._diff_new.value):
            return
        self.state.message = ""
        found = self.state.diff(layer, int(self._diff_old.value), int(self._diff_new.value))
        self._diff.object = (self._diff_html(found) if found is not None else
                             f'<div class="ct-refused-line">{_e(self.state.message)}</div>')

    def _do_save_meta(self, _: Any) -> None:
        layer = self._layer.value
        if not layer:
            return
        form = {k: w.value for k, w in self._meta_widgets.items()}
        ok = self.state.save_meta(layer, form)
        style = "ct-stage" if ok else "ct-refused-line"
        self._status.object = f'<div class="{style} ct-meta-status">{_e(self.state.message)}</div>'
        if ok:
            self._table.object = self._table_html(self.state.rows())

    def _do_preview(self, _: Any) -> None:
        layer, version = self._layer.value, self._preview_version.value
        if not layer:
            return
        self.state.message = ""
        got = self.state.preview(layer, int(version) if version else None)
        if got is None:
            self._preview.objects = [pn.pane.HTML(
                f'<div class="ct-muted">{_e(self.state.message)}</div>', stylesheets=[CSS])]
            return
        import layers

        maplayer, bounds = got
        spec = layers.deck_spec([maplayer], bounds=bounds, lang=self.state.lang)
        legend = maplayer.legend
        caption = (f'<div class="ct-muted ct-preview-caption">{_e(legend.title(self.state.lang))}'
                   f" · {_e(legend.stops[0].label(self.state.lang))}</div>")
        self._preview.objects = [
            pn.pane.HTML(caption, stylesheets=[CSS]),
            pn.pane.DeckGL(spec, sizing_mode="stretch_width", height=440,
                           css_classes=["ct-preview-map"])]

    # -- rendering ---------------------------------------------------------------------
    def _refresh(self) -> None:
        s = self.state
        self._show_downloads()
        rows = s.rows()
        self._table.object = self._table_html(rows)
        names = [r["layer"] for r in rows]
        self._layer.options = names
        if s.selected in names:
            self._layer.value = s.selected
        elif names and self._layer.value not in names:
            self._layer.value = names[0]
        self._show_versions()

    def _show_versions(self) -> None:
        s, layer = self.state, self._layer.value
        if not layer:
            self._versions.object = ""
            return
        versions = s.versions(layer)
        lang = s.lang
        head = ("<tr><th>版本 version</th><th>记录 rows</th><th>来源 source</th>"
                "<th>作者 author</th><th>时间 time</th><th>说明 note</th>"
                f"<th>{_t('download', lang)}</th></tr>")
        body = []
        for v in reversed(versions):
            links = " · ".join(
                f'<a class="ct-download-{fmt}" href="/catalog/download?layer={_e(layer)}'
                f'&version={v["version"]}&format={fmt}">{label}</a>'
                for fmt, label in (("gpkg", "GPKG"), ("geojson", "GeoJSON"), ("csv", "CSV")))
            mark = " ★" if v.get("current") else ""
            body.append(f'<tr class="ct-version"><td>{v["version"]}{mark}</td>'
                        f'<td>{v["row_count"]:,}</td><td>{_e(v.get("source_name"))}</td>'
                        f'<td>{_e(v.get("author"))}</td><td>{_e(v["created_at"][:19])}</td>'
                        f'<td>{_e(v.get("note"))}</td><td>{links}</td></tr>')
        self._versions.object = f'<table class="ct-table">{head}{"".join(body)}</table>'
        self._rollback_to.options = [str(v["version"]) for v in versions
                                     if not v.get("current")]
        numbers = [str(v["version"]) for v in versions]
        current = next((str(v["version"]) for v in versions if v.get("current")), numbers[-1])
        self._diff_old.options, self._diff_new.options = numbers, numbers
        self._diff_new.value = current
        self._diff_old.value = (numbers[numbers.index(current) - 1]
                                if numbers.index(current) > 0 else numbers[0])
        self._preview_version.options = numbers
        self._preview_version.value = current
        if self._shown_layer != layer:  # a form being typed into is not reset by a refresh
            self._shown_layer = layer
            self._diff.object, self._preview.objects = "", []
            for key, value in s.meta(layer).items():
                if key in self._meta_widgets:
                    self._meta_widgets[key].value = value or ""

    def _show_downloads(self) -> None:
        from urllib.parse import quote

        lang, window = self.state.lang, self._window.value.strip()
        extra = f"&datetime={quote(window)}" if window else ""
        rows = []
        for c in self.state.downloads():
            links = " · ".join(
                f'<a class="ct-collection-{fmt}" href="/catalog/download?collection='
                f'{quote(c["id"])}&format={fmt}{extra}">{label}</a>'
                for fmt, label in (("gpkg", "GPKG"), ("geojson", "GeoJSON"), ("csv", "CSV")))
            rows.append(f'<tr class="ct-collection" data-collection="{_e(c["id"])}"><td>'
                        f'{_e(c["title"])}</td><td>{links}</td></tr>')
        ogc = _t("ogc", lang, url="/ogc")
        self._downloads.object = (f'<table class="ct-table">{"".join(rows)}</table>'
                                  f'<p class="ct-muted ct-ogc-hint">{_e(ogc)}</p>')

    def _diff_html(self, d: dict[str, Any]) -> str:
        lang = self.state.lang
        match = (_t("by_key", lang, field=d["key"]) if d["key"] else _t("by_position", lang))
        head = (f'<div class="ct-muted">{_e(d["layer"])}: v{d["old"]} → v{d["new"]} · '
                f"{_e(match)}</div>")
        cells = []
        for part in ("added", "removed", "changed"):
            sample = ", ".join(d[part]["sample"][:8])
            more = " …" if d[part]["count"] > 8 else ""
            cells.append(f'<tr class="ct-diff-{part}"><th>{_t(part, lang)}</th>'
                         f'<td>{d[part]["count"]:,}</td><td class="ct-muted">{_e(sample)}{more}'
                         "</td></tr>")
        rows = (f'<tr><th>{_t("rows", lang)}</th><td>{d["rows"]["old"]:,} → '
                f'{d["rows"]["new"]:,}</td><td></td></tr>')

        def box(b: Any) -> str:
            return ", ".join(f"{v:.4f}" for v in b) if b else "—"

        bounds = (f'<tr><th>{_t("bounds", lang)}</th><td colspan="2">{box(d["bounds"]["old"])}'
                  f' → {box(d["bounds"]["new"])}</td></tr>')
        totals = []
        old_t, new_t = d["totals"]["old"], d["totals"]["new"]
        for column in sorted(set(old_t) | set(new_t)):
            a, b = old_t.get(column), new_t.get(column)
            if a == b:
                continue
            shown = " → ".join("—" if v is None else f"{v:,.6g}" for v in (a, b))
            totals.append(f"<tr><td>{_e(column)}</td><td>{shown}</td></tr>")
        totals_html = (f'<h4>{_t("totals", lang)}</h4><table class="ct-table ct-diff-totals">'
                       f'{"".join(totals)}</table>' if totals else "")
        return (f'{head}<table class="ct-table">{"".join(cells)}{rows}{bounds}</table>'
                f"{totals_html}")

    def _table_html(self, rows: list[dict[str, Any]]) -> str:
        lang = self.state.lang
        if not rows:
            return f'<p class="ct-muted">{_t("no_layers", lang)}</p>'
        head = ("<tr><th>图层 layer</th><th>类型 kind</th><th>版本 version</th>"
                "<th>记录 rows</th><th>来源 source (sha256)</th><th>原坐标系 CRS</th>"
                "<th>发布 published</th><th>新鲜度 freshness</th></tr>")
        body = []
        for r in rows:
            f = r["freshness"]
            badge = (f'<span class="ct-badge ct-{f["state"]}">{_e(f["label_zh"])} '
                     f'{_e(f["label_en"])}</span>')
            title = f'<div class="ct-muted">{_e(r["title"])} {_e(r["department"])}</div>' \
                if r["title"] or r["department"] else ""
            body.append(
                f'<tr class="ct-layer" data-layer="{_e(r["layer"])}"><td>{_e(r["layer"])}'
                f'{title}</td><td>{_e(r["kind"])}</td><td>{r["version"]} / {r["versions"]}</td>'
                f'<td>{r["rows"]:,}</td><td>{_e(r["source"])} '
                f'<span class="ct-muted">{_e(r["sha256"])}</span></td><td>{_e(r["crs"])}</td>'
                f'<td class="ct-nowrap">{_e(r["author"])} <span class="ct-muted">'
                f'{_e(r["created_at"][:16])}</span></td>'
                f"<td>{badge}</td></tr>")
        return f'<table class="ct-table">{head}{"".join(body)}</table>'

    def _report_html(self, report: dict[str, Any] | None) -> str:
        if not report:
            return ""
        lang = self.state.lang
        status = report.get("status", "refused")
        ok = status in ("published", "validated", "unchanged")
        verdict = _t(status, lang) if status in _LABELS else status
        version = (report.get("version") or {}).get("version")
        if status == "published" and version:
            verdict += f" · {_e(report.get('layer'))} v{version}"
        parts = [f'<div class="ct-verdict ct-status-{_e(status)} '
                 f'{"ct-ok-line" if ok else "ct-refused-line"}">{_e(report.get("source"))} → '
                 f"{_e(report.get('kind'))}: {verdict}</div>"]
        info = report.get("info", {})
        facts = " · ".join(f"{_e(k)}: {_e(info[k])}" for k in
                           ("format", "encoding", "source_crs", "rows_read", "rows_kept",
                            "seconds") if info.get(k) not in (None, ""))
        parts.append(f'<div class="ct-muted">{facts}</div>')
        for severity, title in (("error", "errors"), ("warning", "warnings")):
            group = [p for p in report.get("problems", []) if p["severity"] == severity]
            if not group:
                continue
            parts.append(f"<h4>{_t(title, lang)} ({len(group)})</h4>")
            for p in group:
                samples = ""
                if p.get("rows") or p.get("ids"):
                    ids = p.get("ids") or []
                    cells = "".join(
                        f"<tr><td>{_e(r)}</td><td>{_e(ids[i] if i < len(ids) else '')}</td></tr>"
                        for i, r in enumerate(p.get("rows") or [None] * len(ids)))
                    samples = (f'<table class="ct-table ct-samples"><tr><th>{_t("rows", lang)}'
                               f'</th><th>{_t("ids", lang)}</th></tr>{cells}</table>')
                field = f" · {_e(p['field'])}" if p.get("field") else ""
                parts.append(
                    f'<div class="ct-problem ct-{severity}"><span class="ct-code">'
                    f'{_e(p["code"])}</span> × {p.get("count", 0):,}{field}<div>'
                    f'{_e(p["message"])}</div>{samples}</div>')
        return "".join(parts)

    def __panel__(self) -> Any:
        lang = self.state.lang
        limit = _t("limit", lang, mb=f"{self._box.max_mb:,.0f}")
        upload = pn.Column(
            pn.pane.HTML(f"<h3>{_t('upload', lang)}</h3><div class='ct-muted ct-limit'>"
                         f"{_e(limit)}</div>", stylesheets=[CSS]),
            self._box, pn.Row(self._kind, self._name, self._coords),
            pn.Row(self._check, self._publish), self._progress, self._status, self._report,
            self._form, width=760, styles={"overflow-y": "auto", "height": "100%"})
        meta = self._meta_widgets
        tabs = pn.Tabs(
            (_t("tab_versions", lang), pn.Column(
                self._versions, pn.Row(self._rollback_to, self._note, self._rollback),
                sizing_mode="stretch_width")),
            (_t("tab_diff", lang), pn.Column(
                pn.Row(self._diff_old, self._diff_new, self._diff_go), self._diff,
                sizing_mode="stretch_width")),
            (_t("tab_meta", lang), pn.Column(
                pn.Row(meta["title_zh"], meta["title_en"]),
                pn.Row(meta["department"], meta["contact"]),
                pn.Row(meta["licence"], meta["refresh_hours"]),
                pn.Row(meta["description_zh"], meta["description_en"]), self._meta_save,
                sizing_mode="stretch_width")),
            (_t("tab_preview", lang), pn.Column(
                pn.Row(self._preview_version, self._preview_go), self._preview,
                sizing_mode="stretch_width")),
            (_t("tab_downloads", lang), pn.Column(self._window, self._downloads,
                                                  sizing_mode="stretch_width")),
            dynamic=False, sizing_mode="stretch_width", css_classes=["ct-tabs"],
            stylesheets=[TAB_STYLES])
        catalog = pn.Column(
            pn.pane.HTML(f"<h3>{_t('catalog', lang)}</h3>", stylesheets=[CSS]), self._table,
            self._layer, tabs, sizing_mode="stretch_width",
            styles={"overflow-y": "auto", "height": "100%"})
        # The page itself never scrolls (a wall screen's body is fixed): each column does.
        return pn.Row(catalog, upload, sizing_mode="stretch_width",
                      styles={"padding": "0 1vw", "background": "#0e1320",
                              "height": "calc(100vh - 52px)"})
