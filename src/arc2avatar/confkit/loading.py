"""confkit's loading: configs from mappings (``from_dict``, ``merge``), ``--set a.b=value``
overrides (``parse_override``, ``apply_overrides``), dotted names (``get_value``,
``has_schema``, ``flatten``, ``unflatten``)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence, TypeVar

import yaml

from arc2avatar.confkit.coercion import _merge_dataclass
from arc2avatar.confkit.yamlio import _yaml_load
from arc2avatar.errors import InputError

T = TypeVar("T")


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str = "config") -> T:
    """Build ``cls`` from a (possibly partial) mapping; missing keys take the field defaults.

    Strict: an unknown key raises ``InputError`` naming the dotted key, ``source`` (a file name or
    ``--set``) and the nearest valid names; a value of the wrong type raises ``InputError`` too.
    Numbers written as strings (YAML 1.1 reads ``1e8`` as a string) are accepted for float/int
    fields; ints are accepted for float fields.
    """
    return _merge_dataclass(cls, None, data, prefix="", source=source)


def merge(cfg: T, data: Mapping[str, Any], *, source: str = "config") -> T:
    """A copy of ``cfg`` with the (possibly partial, nested) mapping ``data`` applied over it.

    Nested groups merge key by key; a ``dict``-typed field merges key by key too (its keys are
    not validated: it has no schema). Same strictness as ``from_dict``.
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"merge() needs a dataclass instance, got {type(cfg).__name__}")
    return _merge_dataclass(type(cfg), cfg, data, prefix="", source=source)


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=value"`` → ``("a.b", parsed)``; the value is parsed as a YAML scalar or flow list
    (``1.5``, ``true``, ``null``, ``[55, 100]``, ``cuda``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InputError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set prior.cfg_scale=1.5"
        )
    try:
        value = _yaml_load(raw) if raw.strip() else None
    except RecursionError:
        raise InputError(f"--set {text[:60]!r}...: the value is nested too deeply") from None
    except yaml.YAMLError as error:
        raise InputError(f"--set {text!r}: the value is not valid YAML ({error.__class__.__name__}); "
                         "quote strings that contain ':' or '#'") from error
    return key, value


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a.c": 2}`` → ``{"a": {"b": 1, "c": 2}}``."""
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        parts = dotted.split(".")
        node = nested
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InputError(f"key {'.'.join(parts[: i + 1])!r} is set both as a value and as a group")
            node = child
        node[parts[-1]] = value
    return nested


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}`` (leaves are non-mapping values or empty mappings)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """A copy of ``cfg`` with ``--set`` style overrides applied, e.g.
    ``["iterations=1500", "prior.cfg_scale=1.5", "cameras.polar=[55,100]"]``.

    All overrides are applied together (so ``template.kind=flame`` and ``template.flame_path=...``
    may come in any order); dotted paths are validated against the dataclasses; a later
    override of the same key wins.
    """
    flat: dict[str, Any] = {}
    for text in overrides:
        key, value = parse_override(text)
        flat[key] = value
    if not flat:
        return cfg
    return merge(cfg, unflatten(flat), source="--set")


def get_value(cfg: Any, dotted: str) -> Any:
    """The value at a dotted path (dataclass attributes or dict keys); ``KeyError`` if absent."""
    node = cfg
    for part in dotted.split("."):
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            if part not in {f.name for f in dataclasses.fields(node)}:
                raise KeyError(dotted)
            node = getattr(node, part)
        elif isinstance(node, Mapping):
            if part not in node:
                raise KeyError(dotted)
            node = node[part]
        else:
            raise KeyError(dotted)
    return node


def has_schema(cfg: Any, dotted: str) -> bool:
    """True when every component of ``dotted`` down to its parent is a dataclass (so the path is
    checked against a schema), False when it goes through a plain ``dict`` slot."""
    node = cfg
    for part in dotted.split(".")[:-1]:
        if not (dataclasses.is_dataclass(node) and not isinstance(node, type)):
            return False
        node = getattr(node, part, None)
    return dataclasses.is_dataclass(node) and not isinstance(node, type)
