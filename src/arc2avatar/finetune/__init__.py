"""Multi-view LoRA fine-tuning of Arc2Face (spec §8): dataset format + validator, builder, training.

>>> from arc2avatar.finetune import check_dataset, train_lora, FinetuneConfig
>>> check_dataset("data/").raise_if_invalid()
>>> train_lora("data/", weights, "runs/lora", FinetuneConfig(steps=2000))
"""

from .dataset import DatasetLimits, DatasetReport, IdentityRecord, ViewRecord, check_dataset
from .distributed import LaunchSettings
from .launcher import launch_training
from .train import FinetuneConfig, TrainResult, train_lora

__all__ = [
    "DatasetLimits",
    "DatasetReport",
    "FinetuneConfig",
    "IdentityRecord",
    "LaunchSettings",
    "TrainResult",
    "ViewRecord",
    "check_dataset",
    "launch_training",
    "train_lora",
]
