"""Frozen dataclass configs: one home for defaults, unknown keys are errors.

Every configurable part of recloop declares a frozen dataclass whose fields carry a one-line
``help`` in their metadata. CLI flags (``--param name=value``), grid files and saved run
configs all go through :func:`make_config`, so a typo is an error everywhere, never a silent
default.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from recloop.errors import ConfigError

C = TypeVar("C")


def option(default: Any, help: str) -> Any:
    """A dataclass field with a default and a one-line description."""
    return dataclasses.field(default=default, metadata={"help": help})


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Convert CLI/TOML text to the field's declared type (int, float, bool, str, tuple)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        kind = args[0]
        origin = typing.get_origin(kind)
    if origin is tuple:
        inner = typing.get_args(kind)[0]
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_coerce(name, inner, v) for v in items if str(v).strip() != "")
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        tname = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"option {name!r} must be a {tname}, not {value!r}") from None
    return value


def make_config(cls: type[C], values: Mapping[str, Any] | None = None, **overrides: Any) -> C:
    """Build a config dataclass, rejecting unknown keys and coercing text values.

    Raises:
        ConfigError: an unknown key (the message lists the valid ones) or a bad value.
    """
    merged = {**(values or {}), **overrides}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(merged) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for {cls.__name__}; valid options: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(k, hints[k], v) for k, v in merged.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid {cls.__name__}: {e}") from None


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(payload: Mapping[str, Any]) -> str:
    """A short, stable hash of any JSON-ready mapping (used to name and skip runs)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def describe(cls: type) -> list[tuple[str, str, str]]:
    """(name, default, help) of every field, for ``--help`` texts and the README."""
    out = []
    for f in dataclasses.fields(cls):
        out.append((f.name, repr(f.default), str(f.metadata.get("help", ""))))
    return out
