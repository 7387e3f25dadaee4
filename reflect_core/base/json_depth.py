"""How deeply JSON-like data nests, measured without recursion (a crafted file can nest
far deeper than Python's recursion limit); the upload checks and ModelMeta bound it."""

from __future__ import annotations


def json_depth(value) -> int:
    """How deeply lists and dicts nest in ``value`` (a number or string is 0)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest
