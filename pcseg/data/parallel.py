"""Run one job per item in worker processes, with a progress bar, results in input order."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

from tqdm import tqdm


def map_with_progress(fn: Callable, items: Sequence, workers: int, desc: str, unit: str,
                      progress: bool = True) -> list:
    """``[fn(item) for item in items]``, in ``workers`` processes when more than one."""
    results = []
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1:
            for item in items:
                results.append(fn(item))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(fn, items):
                    results.append(result)
                    bar.update()
    return results
