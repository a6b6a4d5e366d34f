// The zone editor's map: deck.gl layers from Python's JSON specs plus an editing layer
// (draw a polygon, brush cells, modify an outline). Rendered by Panel's JSComponent
// (dashboards/zone_map.py); everything it needs is in this bundle, nothing is fetched.
import {Deck, MapView} from "@deck.gl/core"
import {
  ArcLayer, ColumnLayer, GeoJsonLayer, LineLayer, PathLayer, PolygonLayer, ScatterplotLayer,
  SolidPolygonLayer, TextLayer,
} from "@deck.gl/layers"
import {H3HexagonLayer} from "@deck.gl/geo-layers"
import {JSONConfiguration, JSONConverter} from "@deck.gl/json"
import {EditableGeoJsonLayer, ModifyMode} from "@deck.gl-community/editable-layers"

const BACKGROUND = "#0e1320"
const FLUSH_MS = 50
const MAX_POINTS = 5000  // per message; Python rejects more
const EDIT_ID = "ct-zone-edit"
const OUTLINE_ID = "ct-zone-outline"
const BRUSH = {brush_add: "add", brush_remove: "remove"}
const DRAW_ID = "ct-zone-drawing"
const CLICK_SLOP_PX = 5     // a press that moves less than this is a click, not a pan
const CLOSE_PX = 10         // a click this close to the first corner closes the polygon
const OUTLINE_EDITS = new Set(["finishMovePosition", "addPosition", "removePosition"])
const EMPTY = Object.freeze({type: "FeatureCollection", features: []})
const DEFAULT_VIEW = {longitude: 121.47, latitude: 31.23, zoom: 10}
const VIEW_KEYS = ["longitude", "latitude", "zoom", "pitch", "bearing", "minZoom", "maxZoom"]

// The layer classes our Python layers (layers/*.py) emit; "@@=expr" accessors are compiled by
// the converter's default expression parser, as in Panel's DeckGL pane.
const converter = new JSONConverter({
  configuration: new JSONConfiguration({
    classes: {
      ArcLayer, ColumnLayer, GeoJsonLayer, H3HexagonLayer, LineLayer, PathLayer, PolygonLayer,
      ScatterplotLayer, SolidPolygonLayer, TextLayer,
    },
  }),
})

// A new id per pointer-down, increasing across page loads too (ms clock as the floor).
let lastStrokeId = 0
function nextStrokeId() {
  lastStrokeId = Math.max(lastStrokeId + 1, Date.now())
  return lastStrokeId
}

/** Column-wise data {"@@columns": {name: values}} as the row objects deck.gl accessors read. */
export function columnsToRows(data) {
  if (!data || typeof data !== "object" || Array.isArray(data) || !data["@@columns"]) {
    return data
  }
  const columns = data["@@columns"]
  const names = Object.keys(columns)
  const n = names.length ? columns[names[0]].length : 0
  const rows = new Array(n)
  for (let i = 0; i < n; i++) {
    const row = {}
    for (const name of names) {
      row[name] = columns[name][i]
    }
    rows[i] = row
  }
  return rows
}

/** Layer instances from JSON specs; the data skips the converter (it would walk every row). */
export function buildLayers(specs) {
  const out = []
  for (const spec of specs || []) {
    if (!spec || typeof spec !== "object" || !spec["@@type"]) {
      continue
    }
    const {data, ...props} = spec
    try {
      const layer = converter.convert(props)
      if (layer) {
        out.push(data === undefined ? layer : layer.clone({data: columnsToRows(data)}))
      }
    } catch (err) {
      console.error(`ZoneMap: layer ${spec.id} could not be built`, err)
    }
  }
  return out
}

const ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c])
}

function lookup(object, path) {
  let value = object
  for (const part of path.split(".")) {
    if (value == null || typeof value !== "object") {
      return undefined
    }
    value = value[part]
  }
  return value
}

/** A template's {field} / {properties.field} placeholders filled with escaped values. */
export function fillTemplate(template, object) {
  return String(template).replace(/\{([\w.]+)\}/g, (_, path) => {
    let value = lookup(object, path)
    if (value === undefined && object && object.properties) {
      value = lookup(object.properties, path)  // GeoJSON: fields live in properties
    }
    return value == null ? "" : escapeHtml(value)
  })
}

function normaliseView(view) {
  const out = {...DEFAULT_VIEW, pitch: 0, bearing: 0}
  for (const key of VIEW_KEYS) {
    if (view && Number.isFinite(view[key])) {
      out[key] = view[key]
    }
  }
  return out
}

function controllerFor(mode) {
  // Brushing paints with the drag, so the map must not pan; double-clicks finish polygons.
  const brushing = mode in BRUSH
  return {dragPan: !brushing, doubleClickZoom: mode === "view", keyboard: mode === "view"}
}

export function render({model, el}) {
  // Panel re-renders into the same element without calling "remove" handlers: free the old map.
  if (el.ctZoneMap) {
    el.ctZoneMap.finalize()
  }
  el.classList.add("ct-zone-map")
  Object.assign(el.style, {
    position: "relative", width: "100%", height: "100%", minHeight: "100px",
    overflow: "hidden", background: BACKGROUND,
  })
  el.dataset.mode = model.mode
  el.dataset.ready = "0"

  // The layer lists come as JSON text (see ZoneMap in dashboards/zone_map.py for why).
  const parsed = (text) => {
    try { return JSON.parse(text || "[]") } catch (err) {
      console.error("ZoneMap: layer list is not JSON", err)
      return []
    }
  }
  let baseLayers = buildLayers(parsed(model.base_json))
  let zoneLayers = buildLayers(parsed(model.zone_json))
  let draftLayers = buildLayers(parsed(model.draft_json))
  let outline = model.outline || null
  let viewState = normaliseView(model.view)
  let editLayer = null
  let stroke = null
  let flushTimer = null
  let ready = false
  let finalized = false

  const deck = new Deck({
    parent: el,
    views: new MapView({id: "map", controller: controllerFor(model.mode)}),
    viewState,
    onViewStateChange: ({viewState: next}) => {
      viewState = next
      deck.setProps({viewState})
    },
    layers: [],
    parameters: {clearColor: [14 / 255, 19 / 255, 32 / 255, 1]},
    style: {background: BACKGROUND},
    useDevicePixels: true,
    // luma.gl would fetch its debug helpers (webgl-debug, spector.js) from CDNs when asked to
    deviceProps: {debug: false, debugWebGL: false, debugSpectorJS: false},
    getTooltip,
    getCursor,
    onAfterRender: () => {
      if (!ready && deck.isInitialized) {
        ready = true
        el.dataset.ready = "1"
        model.ready = true
      }
    },
    onError: (err) => console.error("ZoneMap: deck.gl error", err),
  })

  function getTooltip(info) {
    if (!info || !info.picked || !info.layer || info.object == null) {
      return null
    }
    const template = (model.tooltips || {})[info.layer.id]
    if (!template || !(template.html || template.text)) {
      return null
    }
    const tooltip = {style: template.style || {}}
    if (template.html) {
      tooltip.html = fillTemplate(template.html, info.object)
    } else {
      tooltip.text = fillTemplate(template.text, info.object)
    }
    return tooltip
  }

  function getCursor({isDragging, isHovering}) {
    if (model.mode in BRUSH) {
      return "crosshair"
    }
    const cursor = editLayer && editLayer.state && editLayer.state.cursor
    if (cursor) {
      return cursor
    }
    if (model.mode === "draw") {
      return "crosshair"
    }
    return isDragging ? "grabbing" : (isHovering ? "pointer" : "grab")
  }

  function onEdit({editType, updatedData, editContext}) {
    const mode = model.mode
    if (mode === "modify" && updatedData) {
      outline = updatedData
      refresh()
      if (OUTLINE_EDITS.has(editType)) {
        const index = (editContext && editContext.featureIndexes || [0])[0] ?? 0
        const feature = updatedData.features[index]
        if (feature && feature.geometry) {
          model.send_msg({kind: "outline", index, geometry: feature.geometry})
        }
      }
    }
  }

  // ---- drawing a polygon: plain DOM pointer events ----
  // editable-layers' DrawPolygonMode takes its clicks from deck.gl's tap recogniser, which
  // drops a click whose press and release are handled more than 250 ms apart; under software
  // WebGL a redraw in between does that (clicks were lost in the browser tests). Corners are
  // therefore taken from the pointer events themselves, like the brush's.
  let corners = []
  let press = null

  function drawingLayer() {
    const path = corners.length > 1 ? [[...corners, ...(corners.length > 2 ? [corners[0]] : [])]] : []
    return [
      new PathLayer({
        id: `${DRAW_ID}-path`, data: path, getPath: (d) => d, getColor: [255, 255, 255, 230],
        getWidth: 2, widthUnits: "pixels", pickable: false,
        parameters: {depthCompare: "always", depthWriteEnabled: false},
      }),
      new ScatterplotLayer({
        id: `${DRAW_ID}-corners`, data: corners, getPosition: (d) => d,
        getFillColor: [255, 209, 102, 255], getLineColor: [14, 19, 32, 255], stroked: true,
        getRadius: 5, radiusUnits: "pixels", lineWidthUnits: "pixels", getLineWidth: 1.5,
        pickable: false, parameters: {depthCompare: "always", depthWriteEnabled: false},
      }),
    ]
  }

  function finishDrawing() {
    if (corners.length >= 3) {
      model.send_msg({kind: "polygon",
                      geometry: {type: "Polygon", coordinates: [[...corners, corners[0]]]}})
    }
    corners = []  // the drawing is not kept here: Python redraws the result as cells
    refresh()
  }

  function onDrawDown(event) {
    if (model.mode !== "draw" || event.button !== 0) {
      return
    }
    press = {x: event.clientX, y: event.clientY}
  }

  function onDrawUp(event) {
    if (model.mode !== "draw" || event.button !== 0 || !press) {
      return
    }
    const moved = Math.hypot(event.clientX - press.x, event.clientY - press.y)
    press = null
    if (moved > CLICK_SLOP_PX) {
      return  // a pan, not a corner
    }
    const point = unprojectClient(event.clientX, event.clientY)
    if (!point) {
      return
    }
    const [x, y] = [event.clientX, event.clientY]
    if (corners.length) {
      const last = projectClient(corners[corners.length - 1])
      if (Math.hypot(x - last[0], y - last[1]) <= CLICK_SLOP_PX) {
        return  // the second click of a double-click on the last corner
      }
      const first = projectClient(corners[0])
      if (corners.length >= 3 && Math.hypot(x - first[0], y - first[1]) <= CLOSE_PX) {
        finishDrawing()
        return
      }
    }
    corners = [...corners, point]
    refresh()
  }

  function onDrawDoubleClick(event) {
    if (model.mode === "draw") {
      event.preventDefault()
      finishDrawing()
    }
  }

  function onDrawKey(event) {
    if (model.mode !== "draw" || !corners.length) {
      return
    }
    if (event.key === "Enter") {
      finishDrawing()
    } else if (event.key === "Escape") {
      corners = []
      refresh()
    } else if (event.key === "Backspace") {
      corners = corners.slice(0, -1)
      refresh()
    }
  }

  function outlineLayer() {
    // Outside draw/modify a plain layer shows the outline: an editable layer would pick
    // (a GPU read-back) on every pointer move for nothing.
    return new GeoJsonLayer({
      id: OUTLINE_ID, data: outline, filled: true, stroked: true, pickable: false,
      getFillColor: [255, 209, 102, 40], getLineColor: [255, 209, 102, 255], getLineWidth: 2,
      lineWidthUnits: "pixels", parameters: {depthCompare: "always", depthWriteEnabled: false},
    })
  }

  function makeEditLayer() {
    const mode = model.mode
    if (mode === "draw") {
      return drawingLayer()
    }
    if (mode !== "modify") {
      return null
    }
    const data = outline || EMPTY
    return new EditableGeoJsonLayer({
      id: EDIT_ID,
      data,
      mode: ModifyMode,
      selectedFeatureIndexes: data.features.map((_, i) => i),
      onEdit,
      pickable: true,
      pickingRadius: 8,
      pickingDepth: 2,
      getFillColor: [255, 209, 102, 40],
      getLineColor: [255, 209, 102, 255],
      getLineWidth: 2,
      getTentativeLineColor: [255, 255, 255, 230],
      getTentativeFillColor: [255, 255, 255, 40],
      getTentativeLineWidth: 2,
      editHandlePointRadiusMinPixels: 5,
      editHandlePointRadiusMaxPixels: 7,
      // drawn over flat layers without z-fighting
      parameters: {depthCompare: "always", depthWriteEnabled: false},
    })
  }

  // Hover picking (tooltips) only when panning: each pick renders every pickable layer and
  // reads the pixels back, which under software WebGL holds the page for a second on the
  // city and delays the answers to strokes. Drawing and editing pick their own layer only.
  function hoverPicking() {
    return !(model.mode in BRUSH)
  }
  function forMode(layers) {
    if (model.mode === "view") {
      return layers
    }
    return layers.map((layer) => layer.props.pickable ? layer.clone({pickable: false}) : layer)
  }

  function refresh() {
    editLayer = makeEditLayer()
    const top = []
    if (outline && model.mode !== "modify") {
      top.push(outlineLayer())  // in "modify" the editing layer draws it
    }
    if (Array.isArray(editLayer)) {
      top.push(...editLayer)
    } else if (editLayer) {
      top.push(editLayer)
    }
    deck.setProps({layers: [...forMode(baseLayers), ...forMode(zoneLayers),
                            ...forMode(draftLayers), ...top], _pickable: hoverPicking()})
  }

  // ---- brush strokes: plain DOM pointer events, flushed to Python in batches ----
  function canvasRect() {
    return deck.getCanvas() ? deck.getCanvas().getBoundingClientRect() : el.getBoundingClientRect()
  }

  function viewport() {
    const viewports = deck.getViewports()
    return viewports.length ? viewports[0] : null
  }

  function projectClient([lon, lat]) {
    const vp = viewport()
    const rect = canvasRect()
    const [x, y] = vp ? vp.project([lon, lat]) : [NaN, NaN]
    return [x + rect.left, y + rect.top]
  }

  function unprojectClient(clientX, clientY) {
    const vp = viewport()
    if (!vp) {
      return null
    }
    const rect = canvasRect()
    const [lon, lat] = vp.unproject([clientX - rect.left, clientY - rect.top])
    return Number.isFinite(lon) && Number.isFinite(lat) ? [lon, lat] : null
  }

  function addPoint(event) {
    if (stroke.lastX === event.clientX && stroke.lastY === event.clientY) {
      return
    }
    const point = unprojectClient(event.clientX, event.clientY)
    if (point) {
      stroke.pending.push(point)
      stroke.lastX = event.clientX
      stroke.lastY = event.clientY
    }
  }

  function flush(final) {
    if (!stroke) {
      return
    }
    // A click without movement stays one final batch with its one point.
    if (!final && (!stroke.moved || !stroke.pending.length)) {
      return
    }
    const points = stroke.pending
    stroke.pending = []
    const chunks = []
    for (let start = 0; start < points.length; start += MAX_POINTS) {
      chunks.push(points.slice(start, start + MAX_POINTS))
    }
    if (!chunks.length) {
      chunks.push([])  // only a final batch can be empty: it closes the stroke
    }
    chunks.forEach((chunk, i) => {
      model.send_msg({kind: "stroke", stroke: stroke.id, mode: stroke.mode, points: chunk,
                      final: final && i === chunks.length - 1})
    })
  }

  function endStroke(event) {
    if (!stroke) {
      return
    }
    if (event && event.type === "pointerup") {
      addPoint(event)
    }
    flush(true)
    stroke = null
    deck.setProps({_pickable: hoverPicking()})
    clearInterval(flushTimer)
    flushTimer = null
    window.removeEventListener("pointermove", onPointerMove, true)
    window.removeEventListener("pointerup", endStroke, true)
    window.removeEventListener("pointercancel", endStroke, true)
  }

  function onPointerMove(event) {
    if (!stroke || event.pointerId !== stroke.pointerId) {
      return
    }
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : []
    for (const e of events.length ? events : [event]) {
      addPoint(e)
    }
    stroke.moved = true
  }

  function onPointerDown(event) {
    const kind = BRUSH[model.mode]
    if (!kind || event.button !== 0 || stroke) {
      return
    }
    const point = unprojectClient(event.clientX, event.clientY)
    if (!point) {
      return
    }
    stroke = {id: nextStrokeId(), mode: kind, pointerId: event.pointerId, pending: [point],
              moved: false, lastX: event.clientX, lastY: event.clientY}
    // No hover picking while painting: each pick waits for the GPU (slow in software WebGL).
    deck.setProps({_pickable: false})
    // On window, so a stroke that leaves the map still ends.
    window.addEventListener("pointermove", onPointerMove, true)
    window.addEventListener("pointerup", endStroke, true)
    window.addEventListener("pointercancel", endStroke, true)
    flushTimer = setInterval(() => flush(false), FLUSH_MS)
  }
  el.addEventListener("pointerdown", onPointerDown, true)
  el.addEventListener("pointerdown", onDrawDown, true)
  el.addEventListener("pointerup", onDrawUp, true)
  el.addEventListener("dblclick", onDrawDoubleClick, true)
  window.addEventListener("keydown", onDrawKey)

  // ---- Python -> JS ----
  // Handlers of a map replaced by a re-render must not touch its finalized deck.
  const on = (name, callback) => model.on(name, () => finalized || callback())
  on("base_json", () => {
    baseLayers = buildLayers(parsed(model.base_json))
    refresh()
  })
  on("zone_json", () => {
    zoneLayers = buildLayers(parsed(model.zone_json))  // the zones change with every save
    refresh()
  })
  on("draft_json", () => {
    draftLayers = buildLayers(parsed(model.draft_json))  // base instances are kept
    refresh()
  })
  on("view", () => {
    viewState = normaliseView(model.view)
    deck.setProps({viewState})
  })
  on("mode", () => {
    endStroke(null)
    corners = []
    press = null
    el.dataset.mode = model.mode
    deck.setProps({views: new MapView({id: "map", controller: controllerFor(model.mode)})})
    refresh()
  })
  on("outline", () => {
    const next = model.outline || null
    // Python echoes our own edits back; replacing equal data mid-gesture would be wasted work.
    if (JSON.stringify(next) !== JSON.stringify(outline)) {
      outline = next
      refresh()
    }
  })
  on("tooltips", () => deck.setProps({getTooltip}))

  const api = {
    deck,
    project(point) {
      return projectClient(point)
    },
    unproject([x, y]) {
      return unprojectClient(x, y)
    },
    layerIds() {
      return (deck.props.layers || []).map((layer) => layer.id)
    },
    viewState() {
      return {...viewState}
    },
    /** The vertices clicked so far in "draw" mode. */
    drawing() {
      return corners.map((p) => [...p])
    },
  }
  el.ctZoneMap = api
  window.ctZoneMap = api

  api.finalize = () => {
    if (finalized) {
      return
    }
    finalized = true
    endStroke(null)
    el.removeEventListener("pointerdown", onPointerDown, true)
    el.removeEventListener("pointerdown", onDrawDown, true)
    el.removeEventListener("pointerup", onDrawUp, true)
    el.removeEventListener("dblclick", onDrawDoubleClick, true)
    window.removeEventListener("keydown", onDrawKey)
    if (window.ctZoneMap === api) {
      delete window.ctZoneMap
    }
    if (el.ctZoneMap === api) {
      delete el.ctZoneMap
    }
    deck.finalize()
  }
  model.on("remove", api.finalize)

  refresh()
}
