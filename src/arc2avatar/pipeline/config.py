"""The configuration of ``arc2avatar create``: typed dataclasses, YAML with docs, ``--set`` overrides.

Two halves:

1. A small, generic config system over nested dataclasses (any package's):
   ``to_dict``, ``from_dict`` (strict), ``merge`` (a partial mapping over a config),
   ``apply_overrides`` (``--set a.b=value``), ``load_yaml`` / ``save_yaml`` (every field written
   with its documentation as a comment).
2. The pipeline's own dataclasses: ``CreateConfig`` and its groups, every paper number a field.

Written by hand because no library does exactly this: OmegaConf/Hydra are heavy dependencies and
raise their own exception types, while we need strict validation that names the file or ``--set``
key, suggests the nearest valid names, and raises our ``InputError`` (a one-line message for
people); and no YAML writer emits dataclass field documentation as comments.

Documentation of fields is read from the class docstring's ``Attributes:`` section (the
convention of this code base, e.g. ``cameras.model.Cameras``) or, when present, from
``field(metadata={"doc": ...})``, which wins. Fields without either are written without a comment.

Config objects are frozen: every function here returns a new object and never mutates its input.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar

import yaml

from arc2avatar._io import atomic_write_text
from arc2avatar.errors import InputError
from arc2avatar.cameras.samplers import CameraRanges, FacePhaseRanges, ViewRings
from arc2avatar.prior.accel import AccelConfig
from arc2avatar.prior.configs import PriorConfig
from arc2avatar.splats.densify import MaskedDensifyConfig
from arc2avatar.splats.model import SplatInitConfig
from arc2avatar.splats.optim import SplatOptimConfig

T = TypeVar("T")

# px, largest render side accepted: the prior is SD-1.5 at 512², and 4 views at 2048² already need
# ≈ 16× its memory (3.3 GB on a GPU at 512², docs/benchmarks.md).
MAX_RESOLUTION = 2048
# Largest seed: torch generators take 64-bit seeds and the run also seeds with seed + 1.
MAX_SEED = 2**63 - 2
# Most subdivision levels of a template part (each ≈ ×4 vertices; 4 levels of the face already
# exceed spec §3's 40–60K face vertices, and 12 would never finish).
MAX_TEMPLATE_LEVELS = 5
MAX_CONFIG_BYTES = 1 << 20  # a resolved config.yaml is ≈ 20 KB
DOC_METADATA_KEY = "doc"  # field(metadata={"doc": "..."}) overrides the class docstring's entry.


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that ``1e8`` / ``1e-5`` are floats (YAML 1.2), not strings, and
    that aliases (``*name``: a config never needs them, and nested ones expand exponentially when
    the config is copied) and duplicate keys (the second would silently win) are refused."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is not accepted in a config "
                                              "(write the values out)", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_FLOAT_TAG = "tag:yaml.org,2002:float"
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
# A private copy of the resolver table (PyYAML shares the per-character lists between subclasses).
_Loader.yaml_implicit_resolvers = {
    char: [(tag, regexp) for tag, regexp in resolvers if tag != _FLOAT_TAG]
    for char, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _char in "-+0123456789.":
    _Loader.yaml_implicit_resolvers.setdefault(_char, []).insert(0, (_FLOAT_TAG, _FLOAT_RE))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 — a SafeLoader subclass


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


# ─────────────────────────────── generic: dataclass <-> plain data ───────────────────────────────


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


# ─────────────────────────────── generic: YAML with documentation ───────────────────────────────

_ENTRY_RE = re.compile(r"^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """Documentation of each field of a dataclass: ``field(metadata={"doc": ...})`` first, then the
    class docstring's ``Attributes:`` entries (``name: text``, ``a, b: shared text``, indented
    continuation lines). Fields documented nowhere are absent from the result."""
    docs: dict[str, str] = {}
    text = inspect.getdoc(cls) or ""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Attributes:"), None)
    if start is not None:
        section_indent = len(lines[start]) - len(lines[start].lstrip())
        entry_indent: int | None = None
        names: list[str] = []
        for line in lines[start + 1:]:
            if not line.strip():
                continue
            indent = len(line) - len(line.lstrip())
            if indent <= section_indent:
                break  # next section
            if entry_indent is None:
                entry_indent = indent
            match = _ENTRY_RE.match(line.strip()) if indent == entry_indent else None
            if match:
                names = [n.strip() for n in match.group(1).split(",")]
                for name in names:
                    docs[name] = match.group(2).strip()
            elif indent > entry_indent and names:
                for name in names:
                    docs[name] = f"{docs[name]} {line.strip()}".strip()
    for f in dataclasses.fields(cls):
        meta_doc = f.metadata.get(DOC_METADATA_KEY) if f.metadata else None
        if meta_doc:
            docs[f.name] = str(meta_doc)
    return {f.name: docs[f.name] for f in dataclasses.fields(cls) if f.name in docs}


def _class_summary(cls: type) -> str:
    doc = cls.__doc__ or ""
    if not doc or doc.startswith(f"{cls.__name__}("):  # dataclass's generated signature, not a doc
        return ""
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ").strip()


def _flow(value: Any) -> str:
    """A YAML flow rendering of a scalar or list: floats exact (shortest repr, scientific with a
    signed exponent for very large/small magnitudes so YAML 1.1 reads them back as floats),
    strings quoted only when needed."""
    if isinstance(value, float) and math.isfinite(value) and value != 0.0 and (
        abs(value) >= _SCIENTIFIC_ABOVE or abs(value) < _SCIENTIFIC_BELOW
    ):
        import numpy as np

        return np.format_float_scientific(value, unique=True, trim="0", exp_digits=1)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_flow(str(k))}: {_flow(v)}" for k, v in value.items()) + "}"
    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, sort_keys=False).strip()
    if text.endswith("..."):
        text = text[: -len("...")].strip()
    return text


# Magnitudes written in scientific notation by the YAML writer (readability of 1e8, 1e-15).
_SCIENTIFIC_ABOVE = 1e5
_SCIENTIFIC_BELOW = 1e-3


def _mapping_lines(data: Mapping[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            lines.append(f"{indent}{_flow(str(key))}:")
            lines.extend(_mapping_lines(value, indent + "  "))
        else:
            lines.append(f"{indent}{_flow(str(key))}: {_flow(value)}")
    return lines


def _comment_lines(text: str, indent: str, width: int = 96) -> list[str]:
    import textwrap

    wrapped = textwrap.wrap(text, width=max(40, width - len(indent) - 2), break_on_hyphens=False) or [""]
    return [f"{indent}# {line}" for line in wrapped]


def _yaml_lines(cfg: Any, indent: str) -> list[str]:
    lines: list[str] = []
    docs = field_docs(type(cfg))
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name in docs:
            lines.extend(_comment_lines(docs[f.name], indent))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            summary = _class_summary(type(value))
            if summary and f.name not in docs:
                lines.extend(_comment_lines(summary, indent))
            lines.append(f"{indent}{f.name}:")
            lines.extend(_yaml_lines(value, indent + "  "))
        elif isinstance(value, Mapping) and value:
            lines.append(f"{indent}{f.name}:")
            lines.extend(_mapping_lines(to_dict(value), indent + "  "))
        else:
            lines.append(f"{indent}{f.name}: {_flow(to_dict(value))}")
    return lines


def dump_yaml(cfg: Any, header: str | None = None) -> str:
    """The YAML text of a dataclass config, every documented field preceded by its doc comment."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"dump_yaml() needs a dataclass instance, got {type(cfg).__name__}")
    lines: list[str] = []
    if header:
        lines.extend(_comment_lines(header, ""))
    summary = _class_summary(type(cfg))
    if summary:
        lines.extend(_comment_lines(summary, ""))
    if lines:
        lines.append("")
    lines.extend(_yaml_lines(cfg, ""))
    return "\n".join(lines) + "\n"


def save_yaml(cfg: Any, path: str | os.PathLike, header: str | None = None) -> Path:
    """Write ``cfg`` as documented YAML to ``path`` atomically; returns the path."""
    atomic_write_text(path, dump_yaml(cfg, header=header))
    return Path(path)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML config file into a mapping (validated later by ``from_dict``/``merge``).

    Raises ``InputError`` naming the file when it is missing, unreadable, not valid YAML (with
    the line) or not a mapping at the top level. An empty file gives ``{}``.
    """
    file = Path(path)
    try:
        if file.is_file() and file.stat().st_size > MAX_CONFIG_BYTES:
            raise InputError(f"config file {file} is larger than {MAX_CONFIG_BYTES >> 10} KiB; not a config")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise InputError(f"config file {file} does not exist") from error
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"config file {file} cannot be read: {error}") from error
    try:
        data = _yaml_load(text)
    except RecursionError:
        raise InputError(f"config file {file} is nested too deeply to be a config") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InputError(f"config file {file} is not valid YAML{where}: {problem}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {file} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


# ─────────────────────────────── the pipeline's configuration ───────────────────────────────


# The other packages' configs, nested here so one YAML file holds the whole run.
PriorSlot = PriorConfig
OptimSlot = SplatOptimConfig
DensifySlot = MaskedDensifyConfig
CamerasSlot = CameraRanges
FaceCamerasSlot = FacePhaseRanges
ViewRingsSlot = ViewRings


@dataclass(frozen=True)
class TemplateConfig:
    """The head template the avatar is built on (spec §3; paper §3.4, E.2).

    Attributes:
        kind: "builtin" (our generated head, no licence strings) or "flame" (user-supplied FLAME
            model, spec §3).
        flame_path: path of the FLAME model (``flame2023_Open.pkl``, ``generic_model.pkl`` or a
            converted ``.npz``); required when kind is "flame".
        masks_path: optional ``FLAME_masks.pkl`` with region masks; derived from geometry if absent.
        face_levels: midpoint-subdivision levels of the face submesh (each ≈ ×4 vertices; spec §3
            targets ≈ 40–60K face vertices for real runs).
        rest_levels: midpoint-subdivision levels of the rest of the head (spec §3 targets
            ≈ 20–30K vertices).
    """

    kind: Literal["builtin", "flame"] = "builtin"
    flame_path: str | None = None
    masks_path: str | None = None
    face_levels: int = 2
    rest_levels: int = 1


@dataclass(frozen=True)
class MeanFaceConfig:
    """Subject-independent mean-face initialisation of the face splats (spec §6; paper §3.4 eq. 7, §A.1).

    Attributes:
        iterations: optimisation steps of the L1 + D-SSIM fit of the face splats to mesh renders
            of the template's mean colour (spec §6: ≈ 1–2K).
        lr_scale: multiplier on the splat learning rates (``optim``) during this fit (1 = the
            same rates as the main run).
        dssim_weight: λ of L = (1 − λ)·L1 + λ·(1 − SSIM) (spec §6: 0.2, as 3DGS).
        resolution: render size of the fit, pixels (square; spec §5: 512).
        views_per_step: face-phase cameras per step (spec §5 face-phase ranges).
        head_iterations: steps of a second fit of ALL template splats to renders of the whole
            template mesh from the training orbit (ours: the official release started from a
            precomputed full-head splat set, ``mean_face_2.pth``, official-release §3.1; without
            it the free splats start unfitted and the guidance first makes them translucent).
        cache: reuse the fitted mean face from the per-template cache when present (spec §6: it
            is subject-independent).
    """

    iterations: int = 1500
    head_iterations: int = 1000
    lr_scale: float = 1.0
    dssim_weight: float = 0.2
    resolution: int = 512
    views_per_step: int = 4
    cache: bool = True


@dataclass(frozen=True)
class LossWeights:
    """Weights of the losses besides the guidance (spec §4; official-release §3.5).

    Attributes:
        tv_rgb: weight of the total variation of the RGB renders (official ``lambda_tv`` = 1).
        tv_disparity: weight of the total variation of the normalised disparity maps
            (official-release §4.3; 1).
        scale: weight of mean(activated, augmented splat scales) (official: 1, hard-coded).
        face_position: weight of the L2 pull of face splats to their template anchors
            (official: 1e8, which under Adam effectively freezes them).
        face_laplacian: weight of the uniform-Laplacian difference on face triangles (official: 1e8).
        freeze_face_xyz: exact alternative to the 1e8 weights: face-splat positions are not
            optimised at all (the two regulariser terms are then skipped). Changes behaviour
            slightly: the 1e8 terms still let positions drift by Adam's step size.
    """

    tv_rgb: float = 1.0
    tv_disparity: float = 1.0
    scale: float = 1.0
    face_position: float = 1e8
    face_laplacian: float = 1e8
    freeze_face_xyz: bool = False


@dataclass(frozen=True)
class AugmentConfig:
    """Render-time augmentation of training renders (spec §4; official-release §3.4).

    Attributes:
        scale_jitter_std_ratio: std of the multiplicative scale jitter, s ← max(s + ratio·s·N(0,1),
            0) (official √0.2/4 ≈ 0.112).
        background: base background colour, RGB in [0, 1] (official: white).
        background_replace_prob: probability that a render's background is replaced (official 0.66).
        random_color_fraction: share of replacements that use a uniformly random colour; the
            rest use black (official ½).
    """

    scale_jitter_std_ratio: float = math.sqrt(0.2) / 4
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    background_replace_prob: float = 0.66
    random_color_fraction: float = 0.5


@dataclass(frozen=True)
class OutputConfig:
    """What ``create`` writes besides the avatar (architecture.md "Outputs of create").

    The turntable's cameras (frames, θ) are in ``view_rings``.

    Attributes:
        video_fps: frame rate of ``turntable.mp4`` (official: 40).
        video_quality: imageio-ffmpeg quality, 0–10 (10 = best; 8 is visually lossless for renders).
        sheet_columns: images per row of the test-view PNG sheet (8 = one ring of test views).
    """

    video_fps: int = 30
    video_quality: int = 8
    sheet_columns: int = 8


@dataclass(frozen=True)
class CreateConfig:
    """Configuration of ``arc2avatar create``: one photo in, a Gaussian-splat head avatar out.

    Attributes:
        preset: the named preset these values started from (paper, release, fast, cpu-smoke);
            informational once resolved.
        seed: seed of every random generator of the run (cameras, augmentation, noise).
        resolution: training render size in pixels, square (spec §5: 512; the prior works at 512).
        views_per_step: cameras rendered per optimisation step (spec §5: 4).
        iterations: optimisation steps of the main run (official-release §5.2: 7000).
        face_phase_fraction: fraction of the iterations at the start that render and optimise
            only face splats with zoomed face cameras (spec §5 / paper §A.2: 0.1; 0 disables).
        checkpoint_every: iterations between resumable checkpoints (official: 1000).
        log_every: iterations between JSON-lines log records.
        test_every: iterations between renders of the held-out test views (official: 1000).
        device: "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
        latent_encoder: how renders become the prior's latents: "vae" (SD-1.5 VAE, the method)
            or "rgb" (2x−1 resized to rgb_latent_resolution; CPU smoke and oracle runs only).
        rgb_latent_resolution: latent size in pixels when latent_encoder is "rgb".
        sampler: training camera sampler: "paper" (one azimuth per quadrant, paper E.5) or
            "release" (i.i.d. with γ = 1.5 concentration, official-release §4.2).
        template: the head template and its upsampling.
        meanface: the mean-face initialisation.
        losses: weights of the non-guidance losses.
        augment: render-time augmentation.
        outputs: videos and sheets written at the end.
        splat_init: initial splat opacities and scales (``arc2avatar.splats.model.SplatInitConfig``).
        prior: the guidance prior (``arc2avatar.prior.configs.PriorConfig``, spec §2).
        optim: learning rates and Adam (``arc2avatar.splats.optim.SplatOptimConfig``, spec §4).
        densify: masked densification, pruning, resets and (``densify.late``) the paper's late
            pruning (``arc2avatar.splats.densify.MaskedDensifyConfig``, spec §4).
        cameras: training camera ranges and their relaxation
            (``arc2avatar.cameras.samplers.CameraRanges``, spec §5).
        face_cameras: zoomed cameras of the face phase
            (``arc2avatar.cameras.samplers.FacePhaseRanges``, spec §5).
        view_rings: fixed test, held-out and turntable views
            (``arc2avatar.cameras.samplers.ViewRings``, spec §5).
        accel: how the prior runs on a CUDA GPU: CUDA graphs, channels_last, fused LoRA, optional
            torch.compile (``arc2avatar.prior.accel.AccelConfig``; issue 9). Never changes the
            maths; ignored on a CPU.
    """

    preset: str = "paper"
    seed: int = 0
    resolution: int = 512
    views_per_step: int = 4
    iterations: int = 7000
    face_phase_fraction: float = 0.1
    checkpoint_every: int = 1000
    log_every: int = 100
    test_every: int = 1000
    device: str = "auto"
    latent_encoder: Literal["vae", "rgb"] = "vae"
    rgb_latent_resolution: int = 64
    sampler: Literal["paper", "release"] = "paper"
    template: TemplateConfig = field(default_factory=TemplateConfig)
    meanface: MeanFaceConfig = field(default_factory=MeanFaceConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)
    # Other packages' configs, nested so that one YAML file describes the whole run.
    splat_init: SplatInitConfig = field(default_factory=SplatInitConfig)
    prior: PriorSlot = field(default_factory=PriorSlot)
    optim: OptimSlot = field(default_factory=OptimSlot)
    densify: DensifySlot = field(default_factory=DensifySlot)
    cameras: CamerasSlot = field(default_factory=CamerasSlot)
    face_cameras: FaceCamerasSlot = field(default_factory=FaceCamerasSlot)
    view_rings: ViewRingsSlot = field(default_factory=ViewRingsSlot)
    accel: AccelConfig = field(default_factory=AccelConfig)


def validate(cfg: CreateConfig) -> CreateConfig:
    """Cross-field checks of a resolved config; raises ``InputError`` listing every problem.

    Run once after preset → YAML → ``--set`` (intermediate states may legitimately be invalid).
    """
    problems: list[str] = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    problems += nonfinite_fields(cfg)
    need(0 <= cfg.seed <= MAX_SEED, f"seed must be in 0..{MAX_SEED} (got {cfg.seed})")
    need(cfg.iterations >= 1, f"iterations must be ≥ 1 (got {cfg.iterations})")
    need(cfg.resolution >= 8 and cfg.resolution % 8 == 0,
         f"resolution must be a positive multiple of 8 (the VAE downsamples ×8), got {cfg.resolution}")
    for name, value in (("resolution", cfg.resolution), ("rgb_latent_resolution", cfg.rgb_latent_resolution),
                        ("meanface.resolution", cfg.meanface.resolution)):
        need(value <= MAX_RESOLUTION, f"{name} must be ≤ {MAX_RESOLUTION} px (the prior works at 512²), got {value}")
    need(cfg.views_per_step >= 1, f"views_per_step must be ≥ 1 (got {cfg.views_per_step})")
    need(cfg.sampler != "paper" or cfg.views_per_step % 4 == 0,
         f"sampler 'paper' draws one view per azimuth quadrant, so views_per_step must be a multiple "
         f"of 4 (got {cfg.views_per_step}); use --set sampler=release for other batch sizes")
    need(0.0 <= cfg.face_phase_fraction < 1.0,
         f"face_phase_fraction must be in [0, 1) (got {cfg.face_phase_fraction})")
    for name in ("checkpoint_every", "log_every", "test_every"):
        need(getattr(cfg, name) >= 1, f"{name} must be ≥ 1 (got {getattr(cfg, name)})")
    need(cfg.device == "auto" or cfg.device == "cpu" or re.fullmatch(r"cuda(:\d+)?", cfg.device) is not None,
         f"device must be auto, cpu, cuda or cuda:N (got {cfg.device!r})")
    need(cfg.rgb_latent_resolution >= 1, "rgb_latent_resolution must be ≥ 1")
    need(cfg.template.kind != "flame" or bool(cfg.template.flame_path),
         "template.kind is 'flame' but template.flame_path is not set: give the FLAME model file, "
         "e.g. --set template.flame_path=flame2023_Open.pkl")
    need(cfg.template.face_levels >= 0 and cfg.template.rest_levels >= 0, "template levels must be ≥ 0")
    need(cfg.meanface.iterations >= 0, "meanface.iterations must be ≥ 0")
    need(cfg.meanface.head_iterations >= 0, "meanface.head_iterations must be ≥ 0")
    need(cfg.meanface.views_per_step >= 1, f"meanface.views_per_step must be ≥ 1 (got {cfg.meanface.views_per_step})")
    need(cfg.meanface.lr_scale > 0, f"meanface.lr_scale must be > 0 (got {cfg.meanface.lr_scale})")
    need(cfg.template.face_levels <= MAX_TEMPLATE_LEVELS and cfg.template.rest_levels <= MAX_TEMPLATE_LEVELS,
         f"template levels must be ≤ {MAX_TEMPLATE_LEVELS} (each level ≈ ×4 vertices)")
    need(0.0 <= cfg.meanface.dssim_weight <= 1.0, "meanface.dssim_weight must be in [0, 1]")
    need(cfg.meanface.resolution >= 8, "meanface.resolution must be ≥ 8")
    for name in ("tv_rgb", "tv_disparity", "scale", "face_position", "face_laplacian"):
        need(getattr(cfg.losses, name) >= 0, f"losses.{name} must be ≥ 0")
    for name in ("grad_threshold", "percent_dense", "scene_extent", "split_scale_factor",
                 "prune_max_screen_radius", "prune_max_world_scale_fraction"):
        need(getattr(cfg.densify, name) > 0, f"densify.{name} must be > 0 (got {getattr(cfg.densify, name)})")
    need(cfg.densify.split_children >= 1, f"densify.split_children must be ≥ 1 (got {cfg.densify.split_children})")
    need(0.0 <= cfg.densify.prune_min_opacity <= 1.0, "densify.prune_min_opacity must be in [0, 1]")
    need(0.0 < cfg.densify.reset_max_opacity <= 1.0, "densify.reset_max_opacity must be in (0, 1]")
    need(cfg.augment.scale_jitter_std_ratio >= 0, "augment.scale_jitter_std_ratio must be ≥ 0")
    need(all(0.0 <= c <= 1.0 for c in cfg.augment.background), "augment.background must be RGB in [0, 1]")
    for name in ("background_replace_prob", "random_color_fraction"):
        need(0.0 <= getattr(cfg.augment, name) <= 1.0, f"augment.{name} must be in [0, 1]")
    need(cfg.outputs.video_fps >= 1, "outputs.video_fps must be ≥ 1")
    need(0 <= cfg.outputs.video_quality <= 10, "outputs.video_quality must be in 0..10")
    need(cfg.outputs.sheet_columns >= 1, "outputs.sheet_columns must be ≥ 1")
    try:
        cfg.accel.check_inductor_options()
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise InputError("invalid configuration: " + "; ".join(problems))
    return cfg
