"""The budgeted trainer and its measurements."""

from recommender.training.config import TrainingConfig
from recommender.training.trainer import LatencyConfig, split_params, train, train_with_transfer

__all__ = ["LatencyConfig", "TrainingConfig", "split_params", "train", "train_with_transfer"]
