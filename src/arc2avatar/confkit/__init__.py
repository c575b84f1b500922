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

The modules: ``loading`` (mappings and ``--set`` into configs), ``coercion`` (the typed checks
and ``to_dict``), ``yamlio`` (the YAML reader and the documented writer).
"""

from __future__ import annotations

from arc2avatar.confkit.coercion import nonfinite_fields, to_dict
from arc2avatar.confkit.loading import (
    apply_overrides, flatten, from_dict, get_value, has_schema, merge, parse_override, unflatten,
)
from arc2avatar.confkit.yamlio import DOC_METADATA_KEY, MAX_CONFIG_BYTES, dump_yaml, field_docs, load_yaml, save_yaml

__all__ = [
    "DOC_METADATA_KEY", "MAX_CONFIG_BYTES", "apply_overrides", "dump_yaml", "field_docs", "flatten", "from_dict",
    "get_value", "has_schema", "load_yaml", "merge", "nonfinite_fields", "parse_override", "save_yaml", "to_dict",
    "unflatten",
]
