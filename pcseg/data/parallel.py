"""Run one job per item in worker processes, with a progress bar, results in input order."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Sequence

from tqdm import tqdm


def map_with_progress(fn: Callable, items: Sequence, workers: int, desc: str, unit: str,
                      progress: bool = True) -> list:
    """``[fn(item) for item in items]``, in ``workers`` processes when more than one.

    The bar advances as jobs finish (in any order); the first error is raised once the
    jobs already running have finished, so their results are not lost.
    """
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1 or len(items) <= 1:
            results = []
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        results = [None] * len(items)
        with ProcessPoolExecutor(max_workers=min(workers, len(items))) as pool:
            futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                if future.exception() is not None:
                    for pending in futures:
                        pending.cancel()
                    raise future.exception()
                results[futures[future]] = future.result()
                bar.update()
        return results
