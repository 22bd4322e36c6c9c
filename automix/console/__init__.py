"""The mixing console: one declaration (:mod:`.graph`), three executors generated from it.

* :mod:`.graph`: processors, their parameters (keys, specs, settings.json places), node kinds
  (strip, bus, master) and the routing of a settings file (groups, buses, sends).
* :mod:`.batched`: torch, batched and differentiable (training).
* :mod:`.blocks`: float64 blocks, full songs, bit-exact re-render (``automix render``).
* :mod:`.spectral`: long-term spectra (the model the fits use).

How to add a processor or an automation lane: docs/console.md.
"""
from .graph import (LIMITER_LOOKAHEAD_MS, MASTER_SPECS, SPEC_VERSION, TRACK_EQ_LAYOUT,  # noqa: F401
                    TRACK_SPECS, ParamSpec, all_processors, route)
from .batched import (console, console_graph, layout_bands, master_chain, mix_bus,  # noqa: F401
                      track_strips)
