"""Arc2Face ID prompt and CLIP prompt encoding (docs/method.md §2; docs/official-code.md §1.2; docs/method.md §2.2).

Written by hand, because transformers 5's ``CLIPTextModel.forward`` takes only ``input_ids`` (no
``inputs_embeds``), while Arc2Face must replace ONE token embedding by the ArcFace vector:
``encode_token_embeddings`` runs the model's own forward with a temporary forward hook on its
token-embedding table that returns the caller's token embeddings. Positional embeddings, the
causal mask, the transformer and the final LayerNorm stay the library's.

Prompt: "photo of a id person" → [BOS, photo, of, a, id, person, EOS, pad...]; the placeholder
``id`` (real CLIP id 1014) sits at position 4; the unit 512-d ArcFace vector, zero-padded to the
hidden size 768, replaces the token embedding there; the output is ``last_hidden_state`` after the
final LayerNorm, (B, 77, 768).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor


def tokenize(tokenizer: Any, prompts: Sequence[str], device: torch.device | str = "cpu") -> Tensor:
    """(N, 77) token ids, padded to ``model_max_length`` and truncated, as SD-1.5 does."""
    batch = tokenizer(
        list(prompts),
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return batch.input_ids.to(device)


def placeholder_token_id(tokenizer: Any, placeholder: str = "id") -> int:
    """The single token id of ``placeholder`` (real CLIP: "id" → 1014); ValueError if it splits."""
    ids = tokenizer.encode(placeholder, add_special_tokens=False)
    if len(ids) != 1:
        raise ValueError(f"placeholder {placeholder!r} is {len(ids)} tokens {ids} with this tokenizer, need 1")
    return int(ids[0])


def placeholder_position(input_ids: Tensor, token_id: int) -> int:
    """Index of the single occurrence of ``token_id`` in a (77,) id sequence (real prompt: 4)."""
    positions = (input_ids == token_id).nonzero().flatten()
    if positions.numel() != 1:
        raise ValueError(f"token {token_id} occurs {positions.numel()} times in the prompt, need exactly once")
    return int(positions[0])


def pad_id_embedding(id_embedding: Tensor, hidden_size: int) -> Tensor:
    """(B, 512) unit ArcFace vectors → (B, hidden_size), zeros appended on the right."""
    if id_embedding.ndim != 2 or id_embedding.shape[1] > hidden_size:
        raise ValueError(f"id_embedding must be (B, ≤{hidden_size}), got {tuple(id_embedding.shape)}")
    return torch.nn.functional.pad(id_embedding, (0, hidden_size - id_embedding.shape[1]))


@contextlib.contextmanager
def _token_embeddings_replaced(encoder: Any, token_embeds: Tensor) -> Iterator[None]:
    """While active, the encoder's token-embedding lookup returns ``token_embeds`` (N, L, D)."""
    table = encoder.get_input_embeddings()

    def hook(_module: Any, _inputs: Any, output: Tensor) -> Tensor:
        if output.shape != token_embeds.shape:
            raise ValueError(f"token embeddings {tuple(token_embeds.shape)} do not match lookup {tuple(output.shape)}")
        return token_embeds.to(output.dtype)

    handle = table.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def encode_token_embeddings(encoder: Any, input_ids: Tensor, token_embeds: Tensor) -> Tensor:
    """Run a ``CLIPTextModel`` on caller-given token embeddings (before positional embeddings).

    Args:
        encoder: transformers ``CLIPTextModel``.
        input_ids: (N, 77) ids (they only drive the pooled output, which is discarded).
        token_embeds: (N, 77, D) token embeddings replacing the table lookup.
    Returns:
        (N, 77, D) ``last_hidden_state`` after the final LayerNorm.
    """
    with _token_embeddings_replaced(encoder, token_embeds):
        return encoder(input_ids=input_ids).last_hidden_state


def id_token_embeddings(
    encoder: Any, tokenizer: Any, id_embedding: Tensor, prompt: str = "photo of a id person", placeholder: str = "id"
) -> tuple[Tensor, Tensor]:
    """Token ids (B, 77) and token embeddings (B, 77, D) of the ID prompt with the ID substituted.

    Only the row at the placeholder's position differs from the plain lookup; it holds the
    zero-padded ``id_embedding`` (B, 512) exactly.
    """
    device = encoder.get_input_embeddings().weight.device
    ids_1 = tokenize(tokenizer, [prompt], device)  # (1, 77)
    position = placeholder_position(ids_1[0], placeholder_token_id(tokenizer, placeholder))
    batch = id_embedding.shape[0]
    input_ids = ids_1.expand(batch, -1)
    table = encoder.get_input_embeddings()
    token_embeds = table(input_ids).clone()  # (B, 77, D)
    token_embeds[:, position] = pad_id_embedding(id_embedding.to(token_embeds), token_embeds.shape[-1])
    return input_ids, token_embeds


@torch.no_grad()
def encode_id_prompt(
    encoder: Any, tokenizer: Any, id_embedding: Tensor, prompt: str = "photo of a id person", placeholder: str = "id"
) -> Tensor:
    """Arc2Face ID conditioning e_id: (B, 512) unit ArcFace vectors → (B, 77, 768) (paper eq. 4; docs/method.md §2.2)."""
    input_ids, token_embeds = id_token_embeddings(encoder, tokenizer, id_embedding, prompt, placeholder)
    return encode_token_embeddings(encoder, input_ids, token_embeds)


@torch.no_grad()
def encode_text(clip: Any, tokenizer: Any, prompts: Sequence[str]) -> Tensor:
    """SD-1.5 CLIP text embeddings: N prompts → (N, 77, 768) ``last_hidden_state``; the view prompts' e_view
    (paper eq. 5; docs/method.md §2.2)."""
    device = clip.get_input_embeddings().weight.device
    return clip(input_ids=tokenize(tokenizer, prompts, device)).last_hidden_state
