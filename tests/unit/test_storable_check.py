"""The quick check every inbound message passes through (``unstorable``) answers exactly as
the walk that locates a problem: same verdict, same rejection, on hostile documents too."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from workorder_pipeline.processors.intake import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    _first_unstorable,
    parse,
    unstorable,
)
from workorder_pipeline.schemas.deadletter import RejectionReason

hostile_text = st.text(alphabet=st.sampled_from(["a", "\x00", "苏", "\ud7ff", " "]), max_size=4)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=INT64_MIN - 3, max_value=INT64_MIN + 3)
    | st.integers(min_value=INT64_MAX - 3, max_value=INT64_MAX + 3)
    | st.integers(min_value=-5, max_value=5)
    | st.floats(allow_nan=True, allow_infinity=True)
    | hostile_text
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=40,
)


@given(documents)
@settings(max_examples=600, deadline=None)
def test_the_quick_check_rejects_exactly_what_the_locating_walk_rejects(document: object) -> None:
    assert unstorable(document) == _first_unstorable(document)


def nested(depth: int) -> object:
    document: object = "x"
    for _ in range(depth - 1):
        document = {"a": [document]} if depth % 2 else [document]
    return document


def test_nesting_at_the_limit_passes_and_one_deeper_is_too_complex() -> None:
    for depth in range(MAX_DEPTH - 2, MAX_DEPTH + 3):
        document = {"k": nested(depth)}
        assert unstorable(document) == _first_unstorable(document)
    deep: object = {}
    for _ in range(MAX_DEPTH):
        deep = {"a": deep}
    rejection = unstorable(deep)
    assert rejection is not None and rejection.reason is RejectionReason.too_complex


def test_a_nul_in_a_deep_field_name_is_rejected_with_its_location() -> None:
    raw = json.dumps({"location": {"road": {"G\u0000": 1}}}).encode()
    rejection = parse(raw, 10_000)
    assert not isinstance(rejection, dict)
    assert rejection.reason is RejectionReason.invalid_character
    assert "location.road" in rejection.detail
