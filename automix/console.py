"""The mixing console, training executor: batched, differentiable, float32 or float64, CPU/GPU.

    stems (B, N, 2, T) --track strip: EQ -> compressor -> gain -> pan/width--> sum over tracks
        -> mix (B, 2, T) --master: EQ -> compressor -> width -> gain -> limiter--> master (B, 2, T)

Parameters are dicts of physical-unit tensors named as in :mod:`automix.params`: ``(B, N)`` for
tracks, ``(B,)`` for the master.  ``mask`` (B, N) marks real tracks (padding is silent and
contributes nothing); ``is_stereo`` (B, N) picks the pan law (mono sources are carried as two
equal channels).  The render executor (:mod:`automix.render`) runs the same processors on full
songs; tests hold the two to agree.
"""
from __future__ import annotations


from .dsp.dynamics import compressor, db_to_amp, limiter, lookahead_samples
from .dsp.eq import Band, eq_fsm
from .dsp.stereo import apply_width, pan_and_width
from .params import LIMITER_LOOKAHEAD_MS, TRACK_EQ_LAYOUT


def layout_bands(params: dict, layout=TRACK_EQ_LAYOUT, expand=lambda t: t) -> list[Band]:
    """Bands of the fixed EQ layout from a parameter dict (``expand`` shapes each tensor)."""
    bands = []
    for i, kind in enumerate(layout):
        key = f"eq{i}_{kind}"
        gain = None if kind in ("highpass", "lowpass") else expand(params[f"{key}.gain_db"])
        bands.append(Band(kind, expand(params[f"{key}.freq_hz"]), expand(params[f"{key}.q"]), gain))
    return bands


def _compress(x, p, sample_rate):
    y, _ = compressor(x, p["comp.threshold_db"], p["comp.ratio"], p["comp.attack_ms"],
                      p["comp.release_ms"], p["comp.knee_db"], p["comp.makeup_db"], sample_rate)
    return y


def track_strips(stems, is_stereo, params, sample_rate):
    """(B, N, 2, T) -> processed tracks (B, N, 2, T)."""
    B, N, C, T = stems.shape
    flat = {k: v.reshape(B * N) for k, v in params.items()}
    x = stems.reshape(B * N, C, T)
    x = eq_fsm(x, layout_bands(flat, expand=lambda t: t.reshape(-1, 1)), sample_rate)
    x = _compress(x, flat, sample_rate)
    x = x * db_to_amp(flat["gain_db"]).reshape(-1, 1, 1)
    x = pan_and_width(x, flat["pan"], flat["width"], is_stereo.reshape(B * N))
    return x.reshape(B, N, C, T)


def mix_bus(stems, mask, is_stereo, params, sample_rate):
    """Sum of the track strips over the real (unmasked) tracks: (B, 2, T)."""
    tracks = track_strips(stems, is_stereo, params, sample_rate)
    return (tracks * mask[:, :, None, None].to(tracks.dtype)).sum(1)


def master_chain(mix, params, sample_rate, lookahead_ms=LIMITER_LOOKAHEAD_MS):
    """(B, 2, T) -> (B, 2, T)."""
    x = eq_fsm(mix, layout_bands(params, expand=lambda t: t.reshape(-1, 1)), sample_rate)
    x = _compress(x, params, sample_rate)
    x = apply_width(x, params["width"])
    x = x * db_to_amp(params["gain_db"]).reshape(-1, 1, 1)
    return limiter(x, params["limiter.ceiling_dbtp"], params["limiter.release_ms"],
                   lookahead_samples(lookahead_ms, sample_rate), sample_rate)


def console(stems, mask, is_stereo, track_params, master_params, sample_rate):
    """The whole console: returns ``(mix, master)``, each (B, 2, T)."""
    mix = mix_bus(stems, mask, is_stereo, track_params, sample_rate)
    return mix, master_chain(mix, master_params, sample_rate)
