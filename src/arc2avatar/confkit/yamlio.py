"""confkit's YAML: a strict reader (``load_yaml``: YAML 1.2 floats, no aliases, no duplicate
keys, a size cap) and a writer that puts each field's documentation above it as a comment
(``dump_yaml``, ``save_yaml``, ``field_docs``)."""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from arc2avatar._io import atomic_write_text
from arc2avatar.confkit.coercion import to_dict
from arc2avatar.errors import InputError

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
