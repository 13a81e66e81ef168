"""The one canonical hash of JSON-shaped data, for anything a transcript fingerprints.

Request hashes (`Request.digest`) and the header's config hash are both SHA-256 over
`json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`, written as
`sha256:<hex>`, so anyone can recompute them with a few lines of any language.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["canonical_digest"]


def canonical_digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
