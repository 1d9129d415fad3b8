"""Values derived from policy objects, computed once per object: the hot path reads compiled
matchers and prepared rules instead of reading the policy anew for every signal."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

Obj = TypeVar("Obj")
Value = TypeVar("Value")


def once_per_object(limit: int) -> Callable[[Callable[[Obj], Value]], Callable[[Obj], Value]]:
    """Make ``derive(obj)`` run once per object; for frozen objects (policies), whose derived
    values never change. Entries are found by ``id(obj)`` and keep ``obj``, so that id cannot
    be reused while its entry lives; past ``limit`` entries (policies reloaded many times
    over) the cache starts afresh."""

    def decorate(derive: Callable[[Obj], Value]) -> Callable[[Obj], Value]:
        cache: dict[int, tuple[Obj, Value]] = {}

        @wraps(derive)
        def derived(obj: Obj) -> Value:
            found = cache.get(id(obj))
            if found is not None and found[0] is obj:
                return found[1]
            if len(cache) >= limit:
                cache.clear()
            value = derive(obj)
            cache[id(obj)] = (obj, value)
            return value

        return derived

    return decorate
