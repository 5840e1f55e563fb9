"""Turn pydantic validation errors into one readable line."""

from __future__ import annotations

from pydantic import ValidationError


def render_validation_error(err: ValidationError, prefix: str = "") -> str:
    """``key.path: message`` for the first error (and how many more there are)."""
    errors = err.errors()
    first = errors[0]
    loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(first["loc"]))
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required key missing"
    else:
        msg = first["msg"]
        if "input" in first and kind not in ("model_type",):
            msg += f" (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}" if loc else f"{msg}{more}"
