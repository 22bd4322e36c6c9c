"""Differentiable audio processors, batched over leading dimensions, in physical units.

Every function here is plain torch (CPU or CUDA, float32 or float64) and is used by both
executors: the training path calls it on crops with gradients, the render path calls it in
float64 on consecutive blocks, carrying state.  The one exception is the EQ, whose training path
filters by frequency sampling and whose render path runs ``scipy.signal.sosfilt``; both use the
same coefficients from :mod:`automix.dsp.eq`.
"""
