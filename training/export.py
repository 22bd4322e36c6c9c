"""Export a training checkpoint for shipping: the model and its provenance, no optimizer state.

    python -m training.export runs/a/checkpoints/best.pt automix/checkpoints/automix-default.pt
"""
from __future__ import annotations

import sys

from automix.errors import AutomixError
from automix.model import load_checkpoint, model_from_checkpoint, save_checkpoint


def export(source, destination) -> dict:
    data = load_checkpoint(source)
    model = model_from_checkpoint(data)
    info = {k: data[k] for k in ("step", "epoch", "config", "world_size") if k in data}
    save_checkpoint(destination, model, training=info)
    return info


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m training.export SOURCE.pt DESTINATION.pt", file=sys.stderr)
        return 2
    try:
        info = export(*argv)
    except AutomixError as exc:
        print(f"training.export: error: {exc}", file=sys.stderr)
        return 2
    print(f"exported step {info.get('step')} to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
