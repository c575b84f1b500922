"""Multi-view LoRA fine-tuning of Arc2Face (docs/method.md §8): dataset format + validator, builder, training.

>>> from arc2avatar.finetune import check_dataset, train_lora, FinetuneConfig
>>> check_dataset("data/").raise_if_invalid()
>>> train_lora("data/", weights, "runs/lora", FinetuneConfig(steps=2000))
"""

from __future__ import annotations

from arc2avatar._lazy import lazy_dir, lazy_exports

_EXPORTS = {
    'DatasetLimits': 'dataset',
    'DatasetReport': 'dataset',
    'IdentityRecord': 'dataset',
    'ViewRecord': 'dataset',
    'check_dataset': 'dataset',
    'LaunchSettings': 'distributed',
    'launch_training': 'launcher',
    'FinetuneConfig': 'train',
    'TrainResult': 'train',
    'train_lora': 'train',
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__dir__ = lazy_dir(globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)  # noqa: PLE0605 (a list)
