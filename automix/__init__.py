"""automix: reference-matching automatic mixing and mastering with a differentiable console.

    import automix
    result = automix.mix("stems/", "reference.wav")      # -> Result(.settings, .mix, .master)
    result = automix.master("mix.wav", "reference.wav")
    settings = automix.predict_settings("stems/", "reference.wav")   # the network's proposal

The names are imported on first use (PEP 562): ``import automix`` and ``automix --help`` do not
pay for torch, numba and librosa (about 3 s) until work starts.
"""
from .errors import AutomixError

__all__ = ["mix", "master", "predict_settings", "Amounts", "Result", "AutomixError"]
__version__ = "0.1.0"

_FROM_API = {"mix", "master", "predict_settings", "Amounts", "Result"}


def __getattr__(name):
    if name in _FROM_API:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'automix' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _FROM_API)
