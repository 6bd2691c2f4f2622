"""S3DIS evaluation protocols: Area 5, and 6-fold cross-validation over the areas."""

from __future__ import annotations

from typing import Sequence

from ..errors import PcsegError

S3DIS_AREAS = tuple(f"Area_{i}" for i in range(1, 7))


def area5_split() -> tuple[list[str], list[str]]:
    """(training areas, validation areas) of the Area 5 protocol."""
    return [a for a in S3DIS_AREAS if a != "Area_5"], ["Area_5"]


def six_fold_split(fold: int) -> tuple[list[str], list[str]]:
    """(training areas, validation areas) of fold 1-6: validate on Area_<fold>."""
    if fold not in range(1, 7):
        raise ValueError(f"fold must be 1..6, got {fold}")
    val = f"Area_{fold}"
    return [a for a in S3DIS_AREAS if a != val], [val]


def select_rooms(entries: Sequence[dict], areas: Sequence[str], where: str = "") -> list[dict]:
    """The index entries named by ``areas``: a whole area (``Area_6``) or one room of an area
    (``Area_6/office_4``), so a split can be made by room within an area. With ``where`` (the
    cache and the setting, for the message), PcsegError naming any name the entries do not hold
    (a misspelt area or room)."""
    wanted = set(areas)
    if where:
        held = sorted({e["area"] for e in entries})
        rooms = {f"{e['area']}/{e['name']}" for e in entries}
        unknown = sorted(wanted - set(held) - rooms)
        if unknown:
            raise PcsegError(f"{where}: unknown area{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                             f"(the cache holds {', '.join(held) or 'no rooms'})")
    return [e for e in entries if e["area"] in wanted or f"{e['area']}/{e['name']}" in wanted]
