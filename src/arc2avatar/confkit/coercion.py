"""confkit's coercion: a config to plain data (``to_dict``) and plain data, checked and
converted field by field, into a config (``_merge_dataclass``: types, literals, unions, nested
groups, did-you-mean for unknown keys), and the finite-number check of every float field."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from arc2avatar.errors import InputError


# ─────────────────────────────── generic: value checks (issue 19) ───────────────────────────────


def nonfinite_fields(cfg: Any, prefix: str = "") -> list[str]:
    """One message per float field of a (nested) config that is NaN or ±inf, by dotted name.

    Generic: every float of every group, inside tuples and mappings too. A config's own range
    checks (its ``__post_init__`` or ``validate``) come on top of this one.
    """
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return [m for f in dataclasses.fields(cfg) for m in nonfinite_fields(getattr(cfg, f.name), f"{prefix}{f.name}.")]
    if isinstance(cfg, Mapping):
        return [m for k, v in cfg.items() for m in nonfinite_fields(v, f"{prefix}{k}.")]
    if isinstance(cfg, (list, tuple)):
        return [m for i, v in enumerate(cfg) for m in nonfinite_fields(v, f"{prefix.rstrip('.')}[{i}].")]
    if isinstance(cfg, float) and not math.isfinite(cfg):
        return [f"{prefix.rstrip('.')} must be a finite number (got {cfg})"]
    return []



def to_dict(cfg: Any) -> Any:
    """Plain data (dicts, lists, scalars) of a config: dataclasses → dicts in field order,
    tuples → lists, paths → strings. Inputs are never shared with the result (deep copy)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {str(key): to_dict(value) for key, value in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(value) for value in cfg]
    if isinstance(cfg, os.PathLike):
        return os.fspath(cfg)
    return copy.deepcopy(cfg)



# ─────────────────────────────── generic: validation internals ───────────────────────────────


def _type_hints(cls: type) -> dict[str, Any]:
    """Resolved field types of a dataclass; a field whose annotation cannot be resolved (e.g. a
    name imported under TYPE_CHECKING in another package) is treated as ``Any``."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 — unresolvable forward refs: resolve field by field
        hints: dict[str, Any] = {}
        module = inspect.getmodule(cls)
        namespace = dict(vars(module)) if module else {}
        for f in dataclasses.fields(cls):
            try:
                hints[f.name] = eval(f.type, namespace) if isinstance(f.type, str) else f.type  # noqa: S307
            except Exception:  # noqa: BLE001
                hints[f.name] = _type_of_default(f)
        return hints


def _type_of_default(f: dataclasses.Field) -> Any:
    """The dataclass type of a field's default when its annotation cannot be resolved, else Any."""
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        default = f.default_factory()  # type: ignore[misc]
    else:
        return Any
    return type(default) if dataclasses.is_dataclass(default) and not isinstance(default, type) else Any


def _suggest(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(valid), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"{hint} Valid keys here: {', '.join(valid)}."


def _merge_dataclass(cls: type, base: Any, data: Any, *, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "the top level"
    if isinstance(data, cls):
        data = to_dict(data)
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: {where} must be a mapping of keys to values, got {_show(data)}")
    init_fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _type_hints(cls)
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in init_fields:
            raise InputError(f"{source}: unknown key '{prefix}{key}'." + _suggest(str(key), list(init_fields)))
        current = getattr(base, key) if base is not None else None
        changes[key] = _coerce(value, hints.get(key, Any), current, prefix=f"{prefix}{key}", source=source)
    try:
        if base is not None:
            return dataclasses.replace(base, **changes)
        return cls(**changes)
    except TypeError as error:  # a required field without default is missing
        raise InputError(f"{source}: {where}: {error}") from error
    except ValueError as error:  # the config's own validation (its __post_init__)
        raise InputError(f"{source}: {error}") from error


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, current: Any, *, prefix: str, source: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert (list → tuple, int → float, ...)."""

    def fail(expected: str) -> InputError:
        return InputError(f"{source}: {prefix} must be {expected}, got {_show(value)}")

    if tp is Any or tp is object:
        return to_dict(value)
    if isinstance(value, Mapping) and not _accepts_mapping(tp):
        keys = ", ".join(str(k) for k in value)
        raise InputError(f"{source}: {prefix} is a single value, not a group (got sub-keys {keys})")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options:
            try:
                return _coerce(value, option, current, prefix=prefix, source=source)
            except InputError:
                continue
        allowed = " or ".join(_type_name(o) for o in options) + (" or null" if type(None) in args else "")
        raise fail(allowed)
    if origin is Literal:
        if value in args and not (isinstance(value, bool) and not any(isinstance(a, bool) for a in args)):
            return value
        raise fail("one of " + ", ".join(repr(a) for a in args))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        base = current if isinstance(current, tp) else None
        return _merge_dataclass(tp, base, value, prefix=f"{prefix}.", source=source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise fail("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise fail("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail("a string")
    if tp is Path:
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise fail("a file path")
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise fail(f"a list ({_type_name(tp)})")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise fail(f"a list of {len(args)} items")
            items = [
                _coerce(v, a, None, prefix=f"{prefix}[{i}]", source=source)
                for i, (v, a) in enumerate(zip(value, args))
            ]
        else:
            item_tp = args[0] if args else Any
            items = [_coerce(v, item_tp, None, prefix=f"{prefix}[{i}]", source=source) for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, Mapping, typing.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        value_tp = args[1] if len(args) == 2 else Any
        merged: dict[str, Any] = dict(to_dict(current)) if isinstance(current, Mapping) else {}
        for key, item in value.items():
            old = merged.get(key)
            if value_tp is Any and isinstance(item, Mapping) and isinstance(old, Mapping):
                merged[str(key)] = _deep_merge(old, item)
            else:
                merged[str(key)] = _coerce(item, value_tp, old, prefix=f"{prefix}.{key}", source=source)
        return merged
    if isinstance(tp, type):
        if isinstance(value, tp):
            return copy.deepcopy(value)
        raise fail(f"a {_type_name(tp)}")
    return to_dict(value)


def _accepts_mapping(tp: Any) -> bool:
    if tp is Any or tp is object or tp in (dict, Mapping):
        return True
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return True
    origin = typing.get_origin(tp)
    if origin in (dict, Mapping, typing.Mapping):
        return True
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return any(_accepts_mapping(a) for a in typing.get_args(tp))
    return False


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(to_dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = to_dict(value)
    return merged
