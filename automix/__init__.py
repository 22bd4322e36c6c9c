"""automix: reference-matching automatic mixing and mastering with a differentiable console.

    import automix
    result = automix.mix("stems/", "reference.wav")      # -> Result(.settings, .mix, .master)
    result = automix.master("mix.wav", "reference.wav")
    settings = automix.predict_settings("stems/", "reference.wav")   # the network's proposal
"""
from .api import Amounts, Result, master, mix, predict_settings
from .errors import AutomixError

__all__ = ["mix", "master", "predict_settings", "Amounts", "Result", "AutomixError"]
__version__ = "0.1.0"
