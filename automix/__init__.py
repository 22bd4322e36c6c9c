"""automix: reference-matching automatic mixing and mastering with a differentiable console.

    import automix
    result = automix.mix("stems/", "reference.wav")      # -> Result(.settings, .mix, .master)
    result = automix.master("mix.wav", "reference.wav")
"""
from .api import Amounts, Result, master, mix
from .errors import AutomixError

__all__ = ["mix", "master", "Amounts", "Result", "AutomixError"]
__version__ = "0.1.0"
