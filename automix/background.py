"""Work that overlaps: a small thread pool for the independent measurements of a run (the
reference's analysis while the stems are read, the true-peak meter while the loudness and
spectra are measured).  The kernels involved release the GIL (numba ``nogil``, numpy, FFTs,
libsndfile), so on a 2-core machine two of them really run at once."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

_POOL: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def submit(fn, /, *args, **kwargs) -> Future:
    """Run ``fn(*args, **kwargs)`` in the background; ``.result()`` returns it or re-raises."""
    global _POOL
    with _LOCK:
        if _POOL is None:  # 4 workers: a background task may itself submit one and wait on it
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="automix")
    return _POOL.submit(fn, *args, **kwargs)
