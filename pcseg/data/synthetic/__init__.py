"""Synthetic S3DIS-style rooms: procedural geometry, a scanner simulation, the raw layout.

``generate_room(seed)`` gives one scanned room in memory; ``write_s3dis_layout(root, ...)``
writes rooms in the raw Stanford layout that ``pcseg prepare s3dis`` reads.
"""

from .layout import write_room_layout, write_s3dis_layout
from .room import ROOM_KINDS, SENSORS, SyntheticRoom, generate_room

__all__ = ["ROOM_KINDS", "SENSORS", "SyntheticRoom", "generate_room", "write_room_layout", "write_s3dis_layout"]
