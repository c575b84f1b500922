"""confkit: a small typed-config library over frozen nested dataclasses (any package's).

``to_dict``, ``from_dict`` (strict), ``merge`` (a partial mapping over a config),
``apply_overrides`` (``--set a.b=value``), ``load_yaml`` / ``save_yaml`` (every field written with
its documentation as a comment), ``field_docs``, did-you-mean suggestions for unknown keys.

Written by hand because no library does exactly this: OmegaConf/Hydra are heavy dependencies and
raise their own exception types, while we need strict validation that names the file or ``--set``
key, suggests the nearest valid names, and raises our ``InputError`` (a one-line message for
people); and no YAML writer emits dataclass field documentation as comments.

Documentation of fields is read from the class docstring's ``Attributes:`` section (the
convention of this code base, e.g. ``cameras.model.Cameras``) or, when present, from
``field(metadata={"doc": ...})``, which wins. Fields without either are written without a comment.

Config objects are frozen: every function here returns a new object and never mutates its input.
It imports no torch (``arc2avatar --help`` and config checks stay cheap).
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

from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar

import yaml

from arc2avatar._io import atomic_write_text
from arc2avatar.errors import InputError

T = TypeVar("T")

# px, largest render side accepted: the prior is SD-1.5 at 512², and 4 views at 2048² already need
# ≈ 16× its memory (3.3 GB on a GPU at 512², docs/benchmarks.md).
MAX_CONFIG_BYTES = 1 << 20  # a resolved config.yaml is ≈ 20 KB; larger files are not configs
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
