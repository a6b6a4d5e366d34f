"""Rasters of counts onto H3 cells: exactness of totals and the sampling error, measured.

The reference is an exact area-weighted split written here independently of
:mod:`twin.rasters`: every pixel polygon is intersected with the hexagons of the H3 cells that
overlap it (found with h3-py, transformed into the raster's CRS with pyproj), and its count is
shared by the intersection areas. ``allocate_raster`` samples ``k × k`` points per pixel
instead; the table below is its error against that reference, for a raster of independent
random counts (0-999 persons per pixel, 10 % zero pixels, seed 7) near 31.23 N 121.47 E, at
resolution 10.

- *abs share*: sum over cells of ``|allocated - exact|`` divided by the raster total;
- *worst cell*: largest ``|allocated - exact| / exact`` over the cells whose exact count is at
  least half of an average full cell (raster density × average cell area).

Measured with ``.venv/bin/pytest tests/test_rasters.py -s -k error`` (shape is columns x
rows; "share" is the abs share, "worst" the worst cell; "4k" is four times the default k)::

    CRS        pixel  shape   k  share  worst |  k=1: share    worst |   4k: share  worst
    EPSG:32651   30m  34x27   1   7.2%  24.1% |        7.2%      24% |    4   0.7%   2.0%
    EPSG:32651  100m  10x8    3   9.7%  26.4% |       41.5%     139% |   12   0.8%   2.7%
    EPSG:32651  250m   6x5    7   9.4%  26.7% |      163.3%     445% |   28   1.0%   2.8%
    EPSG:32651 1000m   6x5   27   8.4%  37.1% |      197.7%    8630% |  108   0.9%   5.0%
    EPSG:4326    30m  34x27   1   7.0%  25.3% |        7.0%      25% |    4   0.8%   2.7%
    EPSG:4326   100m  10x8    3   5.6%  21.6% |       44.7%     128% |   12   0.9%   1.8%
    EPSG:4326   250m   6x5    7   7.5%  29.7% |      156.8%     367% |   28   0.9%   2.6%
    EPSG:4326  1000m   6x5   27   8.2%  30.5% |      197.3%    7338% |  108   0.9%   3.4%

Reading it: with the default k (samples half a cell edge apart) about 5-10 % of the total sits
in the wrong cell, whatever the pixel size, and a well-filled cell can be off by 20-40 %: a
hexagon holds only about a dozen samples, so one sample more or less is ~8 %. Sampling only
the pixel centre (k = 1) misplaces 40-200 % (200 % means every person is in the wrong cell:
counted once missing, once extra). Four times the default k brings the error under 1 % in
total and 5 % per cell. The 30 m rows have k = 1 by default: a pixel much smaller than a cell
goes whole to the cell holding its centre, so the error is that of the pixels straddling a cell
border. In every case the sum over cells equals the raster's sum to 1e-9 relative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import h3
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from h3.api import basic_int as h3i
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS, Transformer

from twin.grid import average_cell_area_m2, cell_resolution
from twin.rasters import allocate_raster, samples_per_side

LNG0, LAT0 = 121.47, 31.23
RES = 10
METRES_PER_DEGREE = 111_320.0


# -- helpers -------------------------------------------------------------------------------------
@dataclass
class Raster:
    """A GeoTIFF written for a test, with what the test needs to know about it."""

    path: Path
    crs: str
    transform: rasterio.Affine
    values: np.ndarray  # (bands, rows, cols) as written, nodata included
    nodata: float | None

    @property
    def valid(self) -> np.ndarray:
        """The counts as they should be read: nodata, NaN and negatives are zero."""
        v = np.where(np.isfinite(self.values), self.values, 0.0)
        if self.nodata is not None and not math.isnan(self.nodata):
            v = np.where(self.values == self.nodata, 0.0, v)
        return np.where(v > 0, v, 0.0)


def write_raster(path: Path, values: np.ndarray, *, crs: str = "EPSG:32651",
                 pixel_m: float = 100.0, centre: tuple[float, float] = (LNG0, LAT0),
                 nodata: float | None = -9999.0, dtype: str = "float32",
                 descriptions: list[str] | None = None) -> Raster:
    """Write ``values`` ((rows, cols) or (bands, rows, cols)) as a GeoTIFF centred on ``centre``.

    In a geographic CRS the pixels are square in degrees, ``pixel_m / 111 320`` on a side.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2:
        values = values[None]
    bands, rows, cols = values.shape
    to_crs = Transformer.from_crs(4326, crs, always_xy=True)
    cx, cy = to_crs.transform(*centre)
    size = pixel_m / METRES_PER_DEGREE if CRS.from_user_input(crs).is_geographic else pixel_m
    transform = Affine(size, 0, cx - cols * size / 2, 0, -size, cy + rows * size / 2)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=bands,
                       dtype=dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(values.astype(dtype))
        for i, d in enumerate(descriptions or []):
            dst.set_band_description(i + 1, d)
    stored = values.astype(dtype).astype(np.float64)  # what a reader gets back
    return Raster(path, crs, transform, stored, nodata)


def pixel_polygons(raster: Raster) -> np.ndarray:
    """Every pixel as a polygon in the raster's CRS, row-major."""
    rows, cols = raster.values.shape[1:]
    r, c = np.divmod(np.arange(rows * cols), cols)
    x0, y0 = raster.transform @ (c, r)
    x1, y1 = raster.transform @ (c + 1, r + 1)
    return shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1),
                       np.maximum(y0, y1))


def exact_allocation(raster: Raster, resolution: int = RES, band: int = 0) -> dict[int, float]:
    """The exact area-weighted split of one band over the cells: the reference.

    Candidate cells are those h3-py finds overlapping the raster's outline (densified and taken
    to WGS84) plus one ring around them; each pixel's count is shared by the areas of its
    intersections with their hexagons, computed in the raster's CRS. The intersections of
    every pixel must add up to the pixel's area, which proves that no overlapping cell was
    missed.
    """
    pixels = pixel_polygons(raster)
    counts = raster.valid[band].ravel()
    outline = shapely.segmentize(shapely.union_all(pixels).envelope,
                                 max(abs(raster.transform.a), abs(raster.transform.e)) / 20)
    to_wgs84 = Transformer.from_crs(raster.crs, 4326, always_xy=True)
    lng, lat = to_wgs84.transform(*shapely.get_coordinates(outline).T)
    shape = h3.LatLngPoly(list(zip(lat, lng, strict=True)))
    found = h3.h3shape_to_cells_experimental(shape, resolution, contain="overlap")
    candidates = sorted({c for cell in found for c in h3i.grid_disk(h3.str_to_int(cell), 1)})
    from_wgs84 = Transformer.from_crs(4326, raster.crs, always_xy=True)
    hexagons = []
    for cell in candidates:
        ring = np.array(h3i.cell_to_boundary(cell))  # (lat, lng) pairs
        x, y = from_wgs84.transform(ring[:, 1], ring[:, 0])
        hexagons.append(shapely.Polygon(np.column_stack([x, y])))
    hexagons = np.array(hexagons)
    tree = shapely.STRtree(hexagons)
    pix_idx, hex_idx = tree.query(pixels, predicate="intersects")
    areas = shapely.area(shapely.intersection(pixels[pix_idx], hexagons[hex_idx]))
    covered = np.bincount(pix_idx, weights=areas, minlength=len(pixels))
    np.testing.assert_allclose(covered, shapely.area(pixels), rtol=1e-9)
    shares = counts[pix_idx] * areas / shapely.area(pixels)[pix_idx]
    result: dict[int, float] = {}
    for cell, value in zip(np.asarray(candidates)[hex_idx].tolist(), shares.tolist(),
                           strict=True):
        result[cell] = result.get(cell, 0.0) + value
    return {c: v for c, v in result.items() if v > 0}


def compare(allocated: dict[int, float], exact: dict[int, float],
            meaningful: float) -> tuple[float, float]:
    """Total absolute difference as a share of the total, and the worst relative error.

    The worst relative error is taken over cells whose exact count is at least ``meaningful``.
    """
    cells = set(allocated) | set(exact)
    total = sum(exact.values())
    diff = sum(abs(allocated.get(c, 0.0) - exact.get(c, 0.0)) for c in cells)
    worst = max((abs(allocated.get(c, 0.0) - v) / v for c, v in exact.items()
                 if v >= meaningful), default=0.0)
    return diff / total, worst


def as_dict(cells: np.ndarray, values: np.ndarray) -> dict[int, float]:
    """``{cell: value}`` of an allocation."""
    return dict(zip(cells.tolist(), values.tolist(), strict=True))


def h3_cell(lng: float | np.ndarray, lat: float | np.ndarray, res: int = RES) -> np.ndarray:
    """h3-py's cell of each point (the independent reference of :func:`points_to_cells`)."""
    lng, lat = np.atleast_1d(lng), np.atleast_1d(lat)
    return np.array([h3i.latlng_to_cell(float(b), float(a), res)
                     for a, b in zip(lng, lat, strict=True)], dtype=np.uint64)


# -- the reference itself -------------------------------------------------------------------------
def test_reference_is_exact_for_a_pixel_inside_one_cell(tmp_path: Path) -> None:
    """Sanity check of the reference: a tiny pixel deep inside a cell goes wholly to it."""
    lat, lng = h3i.cell_to_latlng(h3i.latlng_to_cell(LAT0, LNG0, RES))
    raster = write_raster(tmp_path / "one.tif", np.array([[42.0]]), pixel_m=5.0,
                          centre=(lng, lat))
    exact = exact_allocation(raster)
    assert exact == pytest.approx({h3i.latlng_to_cell(lat, lng, RES): 42.0}, rel=1e-12)


# -- the measured error ----------------------------------------------------------------------------
PIXEL_SIZES = (30, 100, 250, 1000)
#: Upper bounds on the measured errors (abs share, worst cell) with ~1.5x margin; see the
#: module docstring for the numbers themselves.
BOUNDS = {30: (0.11, 0.38), 100: (0.15, 0.40), 250: (0.14, 0.45), 1000: (0.13, 0.56)}
#: The same with four times the default k.
FINE_BOUNDS = (0.015, 0.08)


def _shape_for(pixel_m: int) -> tuple[int, int]:
    """At least 6 x 5 pixels, and at least about 1 km x 0.8 km."""
    return max(5, math.ceil(800 / pixel_m)), max(6, math.ceil(1000 / pixel_m))


@pytest.fixture(scope="module")
def error_table(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """Measure allocate_raster against the exact reference for every CRS, pixel size and k."""
    out = tmp_path_factory.mktemp("error")
    rows = []
    for crs in ("EPSG:32651", "EPSG:4326"):
        for pixel_m in PIXEL_SIZES:
            rng = np.random.default_rng(7)
            shape = _shape_for(pixel_m)
            values = rng.integers(0, 1000, shape).astype(float)
            values[rng.random(shape) < 0.1] = 0.0
            raster = write_raster(out / f"{crs[5:]}_{pixel_m}.tif", values, crs=crs,
                                  pixel_m=pixel_m)
            exact = exact_allocation(raster)
            total = float(raster.valid.sum())
            area = float(np.sum(shapely.area(pixel_polygons(raster))))
            if CRS.from_user_input(crs).is_geographic:  # degrees² to m², near enough here
                area *= METRES_PER_DEGREE**2 * math.cos(math.radians(LAT0))
            meaningful = 0.5 * total / area * average_cell_area_m2(RES)
            row = {"crs": crs, "pixel_m": pixel_m, "shape": shape}
            k_default = samples_per_side(pixel_m, RES)
            for label, k in (("default", None), ("k1", 1), ("k4x", 4 * k_default)):
                allocation = allocate_raster(raster.path, RES, samples=k)
                got = as_dict(allocation.cells, allocation.values["band_1"])
                share, worst = compare(got, exact, meaningful)
                row[label] = {"k": allocation.samples, "share": share, "worst": worst,
                              "total": float(allocation.values["band_1"].sum()),
                              "raster_total": allocation.raster_totals["band_1"]}
            row["exact_total"] = sum(exact.values())
            row["raster_total"] = total
            rows.append(row)
    print("\nallocate_raster vs exact area-weighted split, resolution 10")
    print("CRS        pixel  shape   k  share  worst |  k=1: share    worst |   4k: share  worst")
    for r in rows:
        d, s, f = r["default"], r["k1"], r["k4x"]
        print(f"{r['crs']:<10} {r['pixel_m']:>4}m  {r['shape'][1]:>2}x{r['shape'][0]:<3} "
              f"{d['k']:>2} {d['share']:6.1%} {d['worst']:6.1%} |      {s['share']:6.1%} "
              f"{s['worst']:8.0%} | {f['k']:>4}  {f['share']:5.1%} {f['worst']:6.1%}")
    return rows


def test_error_totals_are_exact(error_table: list[dict]) -> None:
    """Whatever k, every cell sum equals the raster total (and the reference's) to 1e-9."""
    for row in error_table:
        assert row["exact_total"] == pytest.approx(row["raster_total"], rel=1e-9)
        for label in ("default", "k1", "k4x"):
            assert row[label]["total"] == pytest.approx(row["raster_total"], rel=1e-9)
            assert row[label]["raster_total"] == pytest.approx(row["raster_total"], rel=1e-12)


def test_error_default_k_is_documented(error_table: list[dict]) -> None:
    """k follows the documented rule: samples at most half a cell edge apart."""
    expected = {30: 1, 100: 3, 250: 7, 1000: 27}
    for row in error_table:
        assert row["default"]["k"] == expected[row["pixel_m"]], row
        assert row["k1"]["k"] == 1


def test_error_within_measured_bounds(error_table: list[dict]) -> None:
    """The default k stays within the documented error, far below the centre-sample strawman."""
    for row in error_table:
        d, s = row["default"], row["k1"]
        share_bound, worst_bound = BOUNDS[row["pixel_m"]]
        assert d["share"] <= share_bound, row
        assert d["worst"] <= worst_bound, row
        if d["k"] > 1:
            assert d["share"] < 0.3 * s["share"], row
            assert d["worst"] < 0.3 * s["worst"], row


def test_error_shrinks_with_more_samples(error_table: list[dict]) -> None:
    """The error comes from the sample spacing: four times k cuts it about tenfold."""
    for row in error_table:
        d, f = row["default"], row["k4x"]
        assert f["share"] <= FINE_BOUNDS[0], row
        assert f["worst"] <= FINE_BOUNDS[1], row
        assert f["share"] < 0.2 * d["share"], row


# -- known answers -------------------------------------------------------------------------------
def test_tiny_pixels_land_in_one_or_two_cells(tmp_path: Path) -> None:
    """A 3×3 raster of 5 m pixels: at most two cells, the exact total, each pixel whole."""
    values = np.arange(1.0, 10.0).reshape(3, 3)
    raster = write_raster(tmp_path / "tiny.tif", values, pixel_m=5.0)
    allocation = allocate_raster(raster.path, RES)
    assert allocation.samples == 1
    assert 1 <= len(allocation.cells) <= 2
    assert allocation.values["band_1"].sum() == pytest.approx(45.0, rel=1e-12)
    # Each pixel goes whole to the cell of its centre (h3-py).
    rows, cols = np.divmod(np.arange(9), 3)
    x, y = raster.transform @ (cols + 0.5, rows + 0.5)
    lng, lat = Transformer.from_crs(raster.crs, 4326, always_xy=True).transform(x, y)
    expected: dict[int, float] = {}
    for cell, v in zip(h3_cell(lng, lat).tolist(), values.ravel().tolist(), strict=True):
        expected[cell] = expected.get(cell, 0.0) + v
    assert as_dict(allocation.cells, allocation.values["band_1"]) == pytest.approx(expected)


def test_tiny_pixels_at_a_cell_centre_land_in_one_cell(tmp_path: Path) -> None:
    """Centred on a cell's centre, a 15 m raster is wholly inside that cell."""
    cell = h3i.latlng_to_cell(LAT0, LNG0, RES)
    lat, lng = h3i.cell_to_latlng(cell)
    raster = write_raster(tmp_path / "tiny.tif", np.full((3, 3), 2.5), pixel_m=5.0,
                          centre=(lng, lat))
    allocation = allocate_raster(raster.path, RES)
    assert allocation.cells.tolist() == [cell]
    assert allocation.values["band_1"].tolist() == pytest.approx([22.5], rel=1e-12)


def test_large_pixel_is_split_in_equal_sample_shares(tmp_path: Path) -> None:
    """A 500 m pixel at resolution 10: k² equal shares, each in the cell of its sample point."""
    count = 1960.0
    raster = write_raster(tmp_path / "big.tif", np.array([[count]]), pixel_m=500.0)
    allocation = allocate_raster(raster.path, RES)
    k = allocation.samples
    assert k == math.ceil(500 / (75.863783 / 2)) == 14
    assert len(allocation.cells) > 20
    share = count / k**2
    multiples = allocation.values["band_1"] / share
    np.testing.assert_allclose(multiples, np.rint(multiples), atol=1e-9)
    # The samples: a regular k × k sub-grid of the pixel, each in its h3-py cell.
    offsets = (np.arange(k) + 0.5) / k
    u, v = np.meshgrid(offsets, offsets)
    x, y = raster.transform @ (u.ravel(), v.ravel())
    lng, lat = Transformer.from_crs(raster.crs, 4326, always_xy=True).transform(x, y)
    cells, n = np.unique(h3_cell(lng, lat), return_counts=True)
    assert allocation.cells.tolist() == cells.tolist()
    assert np.rint(multiples).astype(int).tolist() == n.tolist()
    assert allocation.values["band_1"].sum() == pytest.approx(count, rel=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nodata_nan_and_negative_pixels_count_zero(tmp_path: Path, dtype: str) -> None:
    """nodata, NaN, infinities and negative counts contribute nothing; the rest is exact."""
    values = np.array([[10.0, -9999.0, np.nan], [-3.0, 20.0, np.inf], [0.0, 30.0, -np.inf]])
    raster = write_raster(tmp_path / "holes.tif", values, nodata=-9999.0, dtype=dtype)
    allocation = allocate_raster(raster.path, RES)
    assert allocation.raster_totals["band_1"] == pytest.approx(60.0, rel=1e-12)
    assert allocation.values["band_1"].sum() == pytest.approx(60.0, rel=1e-12)
    assert (allocation.values["band_1"] > 0).all()


def test_nan_nodata_and_integer_nodata(tmp_path: Path) -> None:
    """A NaN nodata value and an integer raster's nodata both count as zero."""
    values = np.array([[5.0, np.nan], [7.0, 1.0]])
    raster = write_raster(tmp_path / "nan.tif", values, nodata=float("nan"))
    assert allocate_raster(raster.path, RES).values["band_1"].sum() == pytest.approx(13.0)
    ints = np.array([[5, 65535], [7, 1]])
    raster = write_raster(tmp_path / "u16.tif", ints, nodata=65535, dtype="uint16")
    allocation = allocate_raster(raster.path, RES)
    assert allocation.raster_totals["band_1"] == 13.0
    assert allocation.values["band_1"].sum() == pytest.approx(13.0, rel=1e-12)


def test_all_zero_raster_gives_no_cells(tmp_path: Path) -> None:
    """Nothing to hand out: no cells, zero totals."""
    raster = write_raster(tmp_path / "zero.tif", np.zeros((4, 4)))
    allocation = allocate_raster(raster.path, RES)
    assert len(allocation.cells) == 0
    assert allocation.raster_totals == {"band_1": 0.0}
    assert allocation.dasymetric_share == 0.0


def test_multiband_keeps_each_band_total(tmp_path: Path) -> None:
    """Each band's total is kept, and each band is allocated as it would be alone."""
    rng = np.random.default_rng(3)
    bands = rng.integers(0, 100, (3, 5, 6)).astype(float)
    bands[1, 2, 3] = 0.0  # a pixel non-zero in some bands only
    bands[0, 0, 0] = bands[2, 0, 0] = 0.0
    raster = write_raster(tmp_path / "multi.tif", bands, pixel_m=150.0)
    names = ["persons", "age_65_plus", "children"]
    allocation = allocate_raster(raster.path, RES, bands=names)
    for i, name in enumerate(names):
        assert allocation.raster_totals[name] == pytest.approx(bands[i].sum(), rel=1e-12)
        assert allocation.values[name].sum() == pytest.approx(bands[i].sum(), rel=1e-9)
        alone = write_raster(tmp_path / f"alone_{i}.tif", bands[i], pixel_m=150.0)
        single = allocate_raster(alone.path, RES)
        got = as_dict(allocation.cells, allocation.values[name])
        want = as_dict(single.cells, single.values["band_1"])
        assert {c: v for c, v in got.items() if v} == pytest.approx(want, rel=1e-12)


def test_dasymetric_shares_by_weight_and_falls_back_to_sampling(tmp_path: Path) -> None:
    """Two residential buildings of weights 1 and 3 get 25 % / 75 % of their pixel.

    The other pixels (no building, or only a zero-weight one) are sampled as without
    buildings, and a building on a zero pixel or outside the raster gets nothing.
    """
    values = np.array([[400.0, 100.0, 50.0], [0.0, 80.0, 60.0]])
    raster = write_raster(tmp_path / "d.tif", values, pixel_m=200.0)
    to_wgs84 = Transformer.from_crs(raster.crs, 4326, always_xy=True)
    # Building centroids in pixel coordinates (col, row): two in pixel (0, 0), one
    # non-residential (weight 0) in pixel (0, 1), one on the zero pixel (1, 0), one outside.
    cols = np.array([0.2, 0.8, 1.5, 0.5, 9.0])
    rows = np.array([0.3, 0.7, 0.5, 1.5, 9.0])
    weight = np.array([1.0, 3.0, 0.0, 5.0, 2.0])
    lng, lat = to_wgs84.transform(*(raster.transform @ (cols, rows)))
    lng, lat = np.asarray(lng), np.asarray(lat)
    cells = h3_cell(lng, lat)
    assert cells[0] != cells[1], "the two buildings should stand in different cells"
    allocation = allocate_raster(raster.path, RES, building_lng=lng, building_lat=lat,
                                 building_weight=weight, building_cells=cells)
    shares = allocation.building_values["band_1"]
    assert shares.tolist() == pytest.approx([100.0, 300.0, 0.0, 0.0, 0.0], rel=1e-12)
    assert allocation.dasymetric_share == pytest.approx(400.0 / values.sum(), rel=1e-12)
    got = as_dict(allocation.cells, allocation.values["band_1"])
    assert allocation.values["band_1"].sum() == pytest.approx(values.sum(), rel=1e-12)
    # The other pixels are sampled exactly as without buildings.
    rest = values.copy()
    rest[0, 0] = 0.0
    sampled = allocate_raster(write_raster(tmp_path / "rest.tif", rest, pixel_m=200.0).path,
                              RES)
    want = as_dict(sampled.cells, sampled.values["band_1"])
    want[int(cells[0])] = want.get(int(cells[0]), 0.0) + 100.0
    want[int(cells[1])] = want.get(int(cells[1]), 0.0) + 300.0
    assert got == pytest.approx(want, rel=1e-12)


def test_samples_per_side_rule() -> None:
    """k = ceil(pixel edge / half the cell edge), at least 1."""
    assert samples_per_side(1.0, 10) == 1
    assert samples_per_side(37.9, 10) == 1
    assert samples_per_side(100.0, 10) == 3
    assert samples_per_side(100.0, 8) == 1
    assert samples_per_side(1000.0, 8) == 4


# -- properties -----------------------------------------------------------------------------------
@st.composite
def rasters(draw: st.DrawFn) -> dict:
    """A random small count raster: shape, pixel size, CRS, values with zeros and nodata."""
    rows = draw(st.integers(1, 20))
    cols = draw(st.integers(1, 20))
    pixel_m = draw(st.floats(20.0, 500.0))
    crs = draw(st.sampled_from(["EPSG:32651", "EPSG:4326", "EPSG:4549", "EPSG:3857"]))
    resolution = draw(st.sampled_from([8, 9, 10]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = rng.gamma(0.8, 200.0, (rows, cols))
    values[rng.random((rows, cols)) < 0.2] = 0.0
    values[rng.random((rows, cols)) < 0.1] = -9999.0
    values[rng.random((rows, cols)) < 0.05] = np.nan
    return {"values": values, "pixel_m": pixel_m, "crs": crs, "resolution": resolution}


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rasters())
def test_property_total_conserved_and_cells_at_resolution(
        tmp_path_factory: pytest.TempPathFactory, case: dict) -> None:
    """Any raster: the sum over cells is the valid sum, and every cell is at the resolution."""
    path = tmp_path_factory.mktemp("prop") / "r.tif"
    raster = write_raster(path, case["values"], crs=case["crs"], pixel_m=case["pixel_m"])
    allocation = allocate_raster(path, case["resolution"])
    valid_sum = float(raster.valid.sum())
    assert allocation.raster_totals["band_1"] == pytest.approx(valid_sum, rel=1e-9)
    assert allocation.values["band_1"].sum() == pytest.approx(valid_sum, rel=1e-9, abs=1e-9)
    assert (cell_resolution(allocation.cells) == case["resolution"]).all()
    assert all(h3i.is_valid_cell(int(c)) for c in allocation.cells)
    assert len(np.unique(allocation.cells)) == len(allocation.cells)
    assert (allocation.values["band_1"] > 0).all()
