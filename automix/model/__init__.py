"""The learned parameter predictor (see :mod:`automix.model.net`)."""
from .checkpoint import (default_checkpoint, load_checkpoint, load_model, model_from_checkpoint,
                         save_checkpoint)
from .features import log_mel
from .net import AutomixNet, count_parameters
from .predict import predict_from_mels, predict_params, song_mels

__all__ = ["AutomixNet", "count_parameters", "default_checkpoint", "load_checkpoint", "load_model",
           "log_mel", "model_from_checkpoint", "predict_from_mels", "predict_params", "song_mels", "save_checkpoint"]
