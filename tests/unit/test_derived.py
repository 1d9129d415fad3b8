"""once_per_object: a value derived from a policy object is computed once per object."""

from __future__ import annotations

from processors.derived import once_per_object
from schemas.policy import Matcher


def test_a_value_is_derived_once_per_object_and_afresh_for_an_equal_copy() -> None:
    calls: list[Matcher] = []

    @once_per_object(limit=10)
    def derive(matcher: Matcher) -> str:
        calls.append(matcher)
        return f"derived from {matcher.equals}"

    matcher, copy = Matcher(equals="coach"), Matcher(equals="coach")
    assert derive(matcher) == derive(matcher) == derive(copy) == "derived from coach"
    assert len(calls) == 2
    assert calls[0] is matcher and calls[1] is copy


def test_past_the_limit_the_cache_starts_afresh() -> None:
    calls: list[int] = []

    @once_per_object(limit=2)
    def derive(matcher: Matcher) -> int:
        calls.append(1)
        return len(calls)

    matchers = [Matcher(equals=n) for n in range(3)]
    for matcher in matchers:
        derive(matcher)
    assert derive(matchers[2]) == 3  # kept: it came after the cache was cleared
    assert derive(matchers[0]) == 4  # forgotten: derived again
