"""Ctrl-C while a console script is still starting (importing torch takes seconds): one line on
stderr and exit status 130 instead of a KeyboardInterrupt traceback.  Once ``main`` runs, it
handles interrupts itself; this covers the imports before it."""
from __future__ import annotations

import os
import sys


def quiet_interrupt(prog: str) -> None:
    """Install the handler when this process is the console script ``prog`` (not when the
    module is imported by a test or a notebook, whose KeyboardInterrupt stays as it was)."""
    if os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "") != prog:
        return
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, KeyboardInterrupt):
            try:
                sys.stderr.write(f"{prog}: interrupted\n")
                sys.stderr.flush()
            finally:
                os._exit(130)
        previous(kind, value, tb)

    sys.excepthook = hook
