"""Prepared caches packed into one small compressed file, to carry training rooms to another
machine (a lent GPU) where the raw data and the preparers are not.

A pack is an ``.npz`` holding, per cache and room, the room's coordinates as uint16 millimetres
from the room's minimum corner (a cache stores float32 metres from that corner, so the packing
error is at most 0.5 mm), its uint8 colours and labels, and a JSON header with every cache's
classes and room entries. Rooms up to 65.5 m across fit; larger ones are refused.

    pack_caches({"lidar": "data/real/lidar"}, "build/real_rooms.npz")
    unpack_caches("build/real_rooms.npz", "data/real")   # -> data/real/lidar/index.json ...
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import PcsegError
from ..fileutil import atomic_path
from .rooms import ENTRY_KEYS, load_index, load_room, write_index, write_room

#: Coordinate step of a pack, metres.
STEP = 0.001
_LIMIT = np.iinfo(np.uint16).max * STEP


def pack_caches(caches: dict[str, os.PathLike], path: os.PathLike) -> Path:
    """Pack the rooms of ``caches`` ({name: cache folder}) into ``path`` (.npz, atomically)."""
    arrays, header = {}, {"format": 1, "step_m": STEP, "caches": {}}
    for name, root in caches.items():
        index = load_index(root)
        header["caches"][name] = {"classes": index["classes"], "rooms": index["rooms"]}
        for i, entry in enumerate(index["rooms"]):
            room = load_room(root, entry, mmap=False)
            xyz = np.asarray(room.xyz, dtype=np.float64)
            if len(xyz) and (xyz.min() < 0 or xyz.max() > _LIMIT):
                raise PcsegError(f"{root}/{entry['path']}: spans more than {_LIMIT:.1f} m; too large to pack")
            arrays[f"{name}/{i}/xyz"] = np.rint(xyz / STEP).astype(np.uint16)
            arrays[f"{name}/{i}/rgb"] = np.asarray(room.rgb, dtype=np.uint8)
            arrays[f"{name}/{i}/label"] = np.asarray(room.labels, dtype=np.uint8)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


def unpack_caches(path: os.PathLike, dest: os.PathLike) -> dict[str, Path]:
    """Write every cache of the pack ``path`` to ``dest/<name>``; returns {name: cache folder}."""
    path = Path(path)
    if not path.is_file():
        raise PcsegError(f"{path}: no such pack of prepared rooms")
    try:
        pack = np.load(path)
        header = json.loads(pack["header"].tobytes())
    except (OSError, ValueError, KeyError) as exc:
        raise PcsegError(f"{path}: not a pack of prepared rooms ({exc})") from None
    folders = {}
    for name, cache in header["caches"].items():
        root = Path(dest) / name
        entries = []
        for i, entry in enumerate(cache["rooms"]):
            xyz = pack[f"{name}/{i}/xyz"].astype(np.float64) * header["step_m"] + np.asarray(entry["origin"])
            extra = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
            entries.append(write_room(root, entry["area"], entry["name"], xyz, pack[f"{name}/{i}/rgb"],
                                      pack[f"{name}/{i}/label"], len(cache["classes"]), **extra))
        write_index(root, cache["classes"], entries)
        folders[name] = root
    return folders
