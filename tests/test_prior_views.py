"""Claims about view conditioning and Perp-Neg (docs/method.md §2; docs/official-code.md §1.4)."""

from __future__ import annotations

import pytest
import torch

from arc2avatar.prior.configs import PriorConfig
from arc2avatar.prior.views import (
    ViewEmbeddings,
    blend_view_embeddings,
    perp_neg_combine,
    perp_neg_weights,
    view_conditioning,
)

# docs/official-code.md §1.4 worked values: az → (positive mix, ((neg view, weight), (neg view, weight)))
TABLE = {
    0.0: ({"front": 1.0, "side": 0.0}, (("front", 0.0), ("side", -2.0))),
    45.0: ({"front": 0.5, "side": 0.5}, (("front", -0.736), ("side", -0.0135))),
    90.0: ({"side": 1.0, "back": 0.0}, (("side", 0.0), ("front", -2.0))),
    135.0: ({"side": 0.5, "back": 0.5}, (("side", -0.0067), ("front", -2.0))),
    180.0: ({"side": 0.0, "back": 1.0}, (("side", -1.0), ("front", -2.0))),
}


@pytest.mark.parametrize("azimuth", sorted(TABLE))
def test_perp_neg_weights_match_the_official_table(azimuth: float) -> None:
    mix, negatives = TABLE[azimuth]
    for sign in (1.0, -1.0):
        rule = perp_neg_weights(sign * azimuth)
        assert dict(rule.positive) == pytest.approx(mix)
        assert [n for n, _ in rule.negatives] == [n for n, _ in negatives]
        for (_, got), (_, want) in zip(rule.negatives, negatives):
            assert got == pytest.approx(want, abs=5e-4, rel=2e-3)


def _embeds(dim: int = 6) -> ViewEmbeddings:
    g = torch.Generator().manual_seed(3)
    f, s, b, u, i = torch.randn(5, 77, dim, generator=g).unbind(0)
    return ViewEmbeddings(front=f, side=s, back=b, uncond=u, inversion=i)


def test_view_embedding_blend_is_alpha_id_plus_one_minus_alpha_text() -> None:
    e_id, views = torch.randn(77, 4), torch.randn(3, 77, 4)
    out = blend_view_embeddings(e_id, views, 0.9)
    torch.testing.assert_close(out[1], 0.9 * e_id + 0.1 * views[1])


def test_view_conditioning_mixes_positive_and_orders_negatives_per_view() -> None:
    e = _embeds()
    cond = view_conditioning(torch.tensor([45.0, 135.0]), e)
    torch.testing.assert_close(cond.positive[0], 0.5 * e.front + 0.5 * e.side)
    torch.testing.assert_close(cond.positive[1], 0.5 * e.side + 0.5 * e.back)
    torch.testing.assert_close(cond.negative1[1], e.side)
    torch.testing.assert_close(cond.negative2[1], e.front)
    torch.testing.assert_close(cond.uncond[0], e.uncond)
    assert cond.neg_weights[1, 1].item() == pytest.approx(-2.0)
    assert cond.main_contexts().shape == (8, 77, 6)


def test_perp_neg_removes_the_parallel_part_of_negatives_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    u, p = torch.randn(2, 2, 4, 3, 3, generator=g)
    # negative 1 = parallel to Δ_pos for sample 0 → no effect; negative 2 weight below the skip
    n1 = u + 3.0 * (p - u)
    n2 = torch.randn(2, 4, 3, 3, generator=g)
    weights = torch.tensor([[-2.0, 5e-5], [-1.0, 5e-5]])
    out = perp_neg_combine(u, p, [n1, n2], weights, guidance_scale=1.25)
    torch.testing.assert_close(out, u + 1.25 * (p - u), atol=1e-5, rtol=1e-5)


def test_perp_neg_pushes_away_from_the_perpendicular_negative() -> None:
    u = torch.zeros(1, 1, 1, 2)
    p = torch.tensor([[[[1.0, 0.0]]]])
    n = torch.tensor([[[[1.0, 1.0]]]])
    out = perp_neg_combine(u, p, [n], torch.tensor([[-2.0]]), guidance_scale=1.0)
    torch.testing.assert_close(out, torch.tensor([[[[1.0, -2.0]]]]))


def test_prior_config_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        PriorConfig(mode="vsd")  # type: ignore[arg-type]
