"""The one canonical hash of JSON-shaped data, for anything a transcript fingerprints.

Request hashes (`Request.digest`) and the header's config hash are both SHA-256 over
`json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`, written as
`sha256:<hex>`, so anyone can recompute them with a few lines of any language.

`ListDigest` gives the same hash for an object one of whose values is a list that grows at its
end (a request's messages, turn after turn) without serialising the whole object each time: the
canonical text is the members before the list, the list's items, then the members after it, so
the bytes up to the last item are hashed once and the hash state copied there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ListDigest", "canonical_digest", "canonical_json"]

_PREFIX = "sha256:"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_digest(value: Any) -> str:
    return _PREFIX + hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


class ListDigest:
    """`canonical_digest` of `{**members, key: items}`, with the items hashed as they are added.

    `add` hashes the next item for good; `digest(rest)` is the hash with the items added so far
    followed by `rest`, which are not kept (the last item of a list may still change). `fresh`
    starts again from no items, reusing the members' bytes."""

    def __init__(self, members: Mapping[str, Any], key: str) -> None:
        # Keys sort as json.dumps(sort_keys=True) sorts them: as Python strings.
        before = {k: v for k, v in members.items() if k < key}
        after = {k: v for k, v in members.items() if k > key}
        head = canonical_json(before)[:-1] + ("," if before else "") + canonical_json(key) + ":["
        self._tail = ("]" + ("," + canonical_json(after)[1:] if after else "}")).encode("utf-8")
        self._start = hashlib.sha256(head.encode("utf-8"))
        self._hash = self._start.copy()
        self.count = 0  # items added

    def fresh(self) -> ListDigest:
        """A digest of the same members, with no items yet."""
        other = object.__new__(ListDigest)
        other._tail, other._start = self._tail, self._start
        other._hash, other.count = self._start.copy(), 0
        return other

    def add(self, item: Any) -> None:
        self._hash.update(self._item(item))
        self.count += 1

    def digest(self, rest: Iterable[Any] = ()) -> str:
        state = self._hash.copy()
        count = self.count
        for item in rest:
            state.update(self._item(item, count))
            count += 1
        state.update(self._tail)
        return _PREFIX + state.hexdigest()

    def _item(self, item: Any, position: int | None = None) -> bytes:
        first = (self.count if position is None else position) == 0
        return (("" if first else ",") + canonical_json(item)).encode("utf-8")
