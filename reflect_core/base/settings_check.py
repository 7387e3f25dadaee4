"""Building a settings dataclass from user JSON, with messages that name the field."""

from __future__ import annotations


def from_mapping(cls, raw, section: str, error: type[Exception]):
    """``cls(**raw)``, refusing unknown keys and wrong arguments with ``error``."""
    raw = dict(raw or {})
    unknown = set(raw) - set(cls.__dataclass_fields__)
    if unknown:
        raise error(f"{section}: unknown settings {sorted(unknown)}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise error(f"{section}: {exc}") from None


def check_ints(settings, ranges: dict, section: str, error: type[Exception]) -> None:
    """Each named field an integer within its (lo, hi), else ``error`` naming it."""
    for name, (lo, hi) in ranges.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise error(f"{section}.{name}: must be an integer {lo}..{hi}, got {value!r}")
