"""Fuzz: LoRA files as ``create --lora`` checks them before any weight loads (``api.check_lora``:
the safetensors header). Wrong keys and shapes are refused by ``prior.loading.load_lora``
(tests/test_prior_models.py)."""

from __future__ import annotations

import json
import struct

from hypothesis import given, strategies as st

from arc2avatar.pipeline.api import check_lora

from fuzz_support import FUZZ, assert_read_or_refused, assert_refused, scratch


def _safetensors(header: object, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    return struct.pack("<Q", len(text)) + text + data


CASES = {
    "short": b"\x01\x02",
    "huge_header_length": struct.pack("<Q", 2**63) + b"{}",
    "not_json": _safetensors(b"{not json"),
    "huge_int_offsets": _safetensors(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1' + b"0" * 5000 + b"]}}"),
    "inf_offsets": _safetensors(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1e999]}}'),
    "deep": _safetensors(b"[" * 50_000),
    "beyond_file": _safetensors({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 4),
}


def test_crafted_lora_headers(tmp_path) -> None:
    for name, data in CASES.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        assert_refused(check_lora, path)


@FUZZ
@given(header=st.dictionaries(st.text(max_size=5), st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets"]),
                                                                    st.lists(st.integers(-5, 2**70), max_size=3)
                                                                    | st.text(max_size=3), max_size=3), max_size=3),
       data=st.binary(max_size=64))
def test_any_header(header, data) -> None:
    with scratch() as folder:
        path = folder / "pytorch_lora_weights.safetensors"
        path.write_bytes(_safetensors(header, data))
        assert_read_or_refused(check_lora, path)
