"""Test and benchmark material made here, never downloaded: tiny or full-size random weights in the
real file layouts (``prior_weights``, ``identity_weights``), a synthetic FLAME model (``flame``),
photos from scikit-image and avatars built on them (``photos``), synthetic fine-tuning data
(``finetune_data``).

No library module imports this package (an import-linter contract keeps it so); the tests, the
benchmark harness (``arc2avatar.bench``) and ``benchmarks/`` do.
"""
