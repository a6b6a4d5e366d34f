"""Apply a Python function once per distinct value of a column, not once per record.

Departments' columns repeat a few values (a use, a district code, a date) or hold one value per
record (an id); either way the per-value functions of mapping and validation are pure, so they
run once per distinct value, and the results are spread back with numpy's indexing. Finding the
distinct values is pandas' hash table (C), which keeps a 2.4 M-row column within a second where
a Python loop over the records took several. Text columns go further, through Arrow's string
kernels (:func:`as_strings`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["as_strings", "distinct", "map_distinct"]


def distinct(values: np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``values`` and each record's code into them.

    Values are distinct by type as well as by value (``1``, ``1.0`` and ``True`` are three
    values, and so are None and NaN), since a function may tell them apart. Unhashable values
    (a list from a GDAL list field) are each their own distinct value.

    Returns
    -------
    codes : numpy.ndarray
        ``uniques[codes]`` gives back the values, in record order.
    uniques : numpy.ndarray
        Object array, in order of first appearance.
    """
    raw = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else \
        np.asarray(values, dtype=object)
    try:
        codes, found = pd.factorize(raw, use_na_sentinel=True)
    except TypeError:
        return np.arange(len(raw)), raw
    type_codes, types = pd.factorize(np.frompyfunc(type, 1, 1)(raw))
    if len(types) <= 1 and not (codes < 0).any():
        return codes, _objects(found)
    # Key by (value, type); missing values (code -1) then part by type too.
    codes, _keys = pd.factorize((codes.astype(np.int64) + 1) * len(types) + type_codes)
    first = np.empty(len(_keys), dtype=np.intp)
    first[codes[::-1]] = np.arange(len(raw))[::-1]
    return codes, raw[first]


def _objects(values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # element by element: tuples stay single values
        out[i] = v
    return out


def map_distinct(values: np.ndarray | pd.Series, func: Callable[[Any], Any]) -> np.ndarray:
    """``func(v)`` for every ``v`` of ``values``, computed once per distinct value.

    Parameters
    ----------
    values
        Any one-dimensional values; an object array keeps its Python objects.
    func
        A pure function of one value; it may return any object, tuples included.

    Returns
    -------
    numpy.ndarray
        An object array of the results, aligned with ``values``.
    """
    codes, uniques = distinct(values)
    results = np.empty(len(uniques), dtype=object)
    for i, v in enumerate(uniques):  # element by element: tuples must stay single values
        results[i] = func(v)
    return results[codes]


def as_strings(values: pd.Series) -> pa.Array | None:
    """The column as an Arrow string array when it holds only text and missing values.

    Arrow's string kernels (trimming, RE2 matching) then work on the whole column in C; a
    column of anything else (numbers, mixed types) gives None, for the per-value path.
    """
    try:
        if isinstance(values.dtype, pd.StringDtype | pd.ArrowDtype):
            # Arrow-backed already (GeoParquet, pandas 3 strings): no copy.
            array = pa.array(values.array, from_pandas=True)
            if pa.types.is_large_string(array.type) or pa.types.is_string(array.type):
                return array
            return None
        if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
            return None
        return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
