"""pydantic's validation errors reworded as one line: the key path and what was expected, never the value."""
from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel

from llmur.config.errors import join_key
from llmur.config.schema import LlmurConfig


def _field_at(loc: tuple[Any, ...]) -> Any:
    """The pydantic FieldInfo that an error location points at, to phrase its bounds."""
    model: Any = LlmurConfig
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in getattr(model, "model_fields", {}):
            return None
        info = model.model_fields[part]
        model = _model_in(info.annotation)
    return info


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _bounds(loc: tuple[Any, ...]) -> str:
    info = _field_at(loc)
    low = high = None
    for item in getattr(info, "metadata", []):
        for attr in ("ge", "gt"):
            if getattr(item, attr, None) is not None:
                low = (attr, getattr(item, attr))
        for attr in ("le", "lt"):
            if getattr(item, attr, None) is not None:
                high = (attr, getattr(item, attr))
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"expected {low[1]}..{high[1]}"
    parts = []
    if low:
        parts.append(f"{'at least' if low[0] == 'ge' else 'more than'} {low[1]}")
    if high:
        parts.append(f"{'at most' if high[0] == 'le' else 'less than'} {high[1]}")
    return "expected " + " and ".join(parts) if parts else "expected a value in range"


_EXPECTED = {
    "int_parsing": ("not an integer", "expected a whole number"),
    "int_type": ("not an integer", "expected a whole number"),
    "int_from_float": ("not a whole number", "expected a whole number"),
    "float_parsing": ("not a number", "expected a number"),
    "float_type": ("not a number", "expected a number"),
    "bool_parsing": ("not a boolean", "expected true or false"),
    "bool_type": ("not a boolean", "expected true or false"),
    "string_type": ("not a string", "expected text"),
    "list_type": ("not a list", "expected a YAML list"),
    "dict_type": ("not a mapping", "expected a YAML mapping of keys"),
    "model_type": ("not a mapping", "expected a YAML mapping of keys"),
    "model_attributes_type": ("not a mapping", "expected a YAML mapping of keys"),
    "string_too_short": ("empty", "expected a non-empty string"),
}


def describe(error: dict[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into (KEY.PATH, 'what is wrong (expected …)'); never echo the input."""
    loc = tuple(error["loc"])
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else join_key(path, part)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return path, "required key is missing (expected a value here)"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return path, f"out of range ({_bounds(loc)})"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        word = "engine" if path.endswith("engine") else "value"
        return path, f"unknown {word} (expected one of {expected})"
    if kind in _EXPECTED:
        what, expected = _EXPECTED[kind]
        if kind in ("int_parsing", "int_type", "float_parsing", "float_type") and _field_at(loc) is not None:
            bounds = _bounds(loc)
            if bounds != "expected a value in range":
                expected = f"{expected}, {bounds[len('expected '):]}"
        return path, f"{what} ({expected})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return path, message if "expected" in message else f"{message} (expected a valid value here)"
