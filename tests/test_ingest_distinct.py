"""The per-distinct-value and Arrow fast paths give what the per-record functions give."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest._distinct import map_distinct
from ingest.mapping import _texts, _to_text
from ingest.validate import _clean, _clean_column

# Text with the characters the cleaning cares about: spaces of every kind, controls, markup.
_ALPHABET = st.sampled_from([*"ab 中<>:/j\t\n\r\x00\x1f\x7f\x85\u00a0\u200b\u2028\u3000\ufeff",
                             "script", "javascript:", "NaN", "null", "-"])
_TEXT = st.lists(_ALPHABET, max_size=6).map("".join)
_VALUE = st.one_of(_TEXT, st.none(), st.just(math.nan), st.integers(-5, 5), st.booleans(),
                   st.floats(allow_nan=False, width=32), st.tuples(st.integers(0, 2)))


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@settings(max_examples=200, deadline=None)
@given(st.lists(_VALUE, max_size=30))
def test_map_distinct_is_the_function_of_every_value(values: list) -> None:
    raw = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        raw[i] = v
    # Distinct by type and value: 1, 1.0 and True are three values (0.0 and -0.0 are one).
    got = map_distinct(raw, lambda v: (type(v).__name__, v))
    assert all(g[0] == type(v).__name__ and _same(g[1], v)
               for g, v in zip(got, values, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_TEXT, st.none()), max_size=30))
def test_cleaning_a_text_column_equals_cleaning_each_value(values: list) -> None:
    series = pd.Series(values, dtype=object)
    cleaned, control, markup = _clean_column(series)
    expected = [_clean(v) for v in values]
    assert all(_same(c, e[0]) for c, e in zip(cleaned, expected, strict=True))
    assert control.tolist() == [e[1] for e in expected]
    assert markup.tolist() == [e[2] for e in expected]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_TEXT.filter(lambda t: "\x1f" not in t and "\x85" not in t),
                          st.none()), max_size=30))
def test_text_of_a_text_column_equals_the_text_of_each_value(values: list) -> None:
    # (U+001F and U+0085 are whitespace to Python's strip, not to Arrow's; the control-
    # character cleaning that follows removes them either way.)
    got = _texts(pd.Series(values, dtype=object)).tolist()
    assert got == [_to_text(v) for v in values]
