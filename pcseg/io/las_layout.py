"""The layout of a LAS/LAZ file, checked on its raw bytes before laspy decodes anything.

laspy and its LAZ decoder (lazrs) trust the header: a count of variable-length records, a
point count or a LAZ chunk count read from a damaged file makes them loop, allocate
gigabytes or abort. :func:`inspect_las` reads the fixed-layout public header (LAS 1.0-1.4,
ASPRS R15 table 3), walks the variable-length records, the extended ones of LAS 1.4 and,
for LAZ, the LASzip record and the chunk table's header, checks every size and count
against the file's size, and returns what the file can hold. It raises
:class:`PcsegError` with one line naming the file for anything inconsistent.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import PcsegError

#: Public header size (bytes) of each LAS 1.x minor version.
HEADER_SIZES = {0: 227, 1: 227, 2: 227, 3: 235, 4: 375}
#: Point record size (bytes) without extra bytes, by point format (R15 tables 7-16).
BASE_RECORD_SIZES = {0: 20, 1: 28, 2: 26, 3: 34, 4: 57, 5: 63, 6: 30, 7: 36, 8: 38, 9: 59, 10: 67}
VLR_HEADER_SIZE = 54
EVLR_HEADER_SIZE = 60
#: The LASzip record (user id, record id) and the COPC info record.
LASZIP_RECORD = (b"laszip encoded", 22204)
COPC_RECORD = (b"copc", 1)
#: Fixed part of the LASzip record before its item list, bytes; one item takes 6.
LASZIP_FIXED_SIZE = 34
#: LASzip's chunk-size value meaning "variable-size chunks" (their counts are in the chunk table).
VARIABLE_CHUNKS = 0xFFFFFFFF
#: The most points LASzip packs into one byte of compressed data (identical points reach ~150;
#: the bound only keeps a damaged header from having the decoder produce billions of points).
MAX_POINTS_PER_COMPRESSED_BYTE = 1024
#: Smallest compressed chunk, bytes (the arithmetic decoder's first read).
MIN_CHUNK_BYTES = 4


@dataclass(frozen=True)
class LasLayout:
    """What a LAS/LAZ file's bytes hold.

    Attributes:
        version: (major, minor), 1.0-1.4.
        point_format: 0-10 (the compression bits removed).
        record_length: bytes per point record (extra bytes included).
        compressed: LAZ.
        declared: the point count of the header (the 64-bit one of LAS 1.4 when set).
        readable: the most points the file's size allows (``declared`` or fewer); for an
            uncompressed file exactly the complete records it holds.
        copc: the file is a COPC (cloud-optimised) LAZ.
        chunk_size: for LAZ, the points of each compressed chunk (``VARIABLE_CHUNKS``: listed in the
            chunk table); 0 for LAS.
        chunk_table: for LAZ, the chunk table ((points, bytes) of each chunk) when it lies inside the
            file and its sizes add up to the compressed data's, else None (decoded chunk after chunk).
        evlrs_intact: the extended variable-length records (LAS 1.4) the header declares lie inside
            the file (False for a cut file: they are then neither read nor copied).
    """

    version: tuple[int, int]
    point_format: int
    record_length: int
    compressed: bool
    declared: int
    readable: int
    copc: bool
    chunk_size: int
    chunk_table: Optional[list]
    evlrs_intact: bool


def _bad(path: Path, reason: str) -> PcsegError:
    return PcsegError(f"{path}: not a valid LAS/LAZ file ({reason})")


def inspect_las(path: Path) -> LasLayout:
    """The :class:`LasLayout` of the LAS/LAZ file ``path``; PcsegError (one line) when its header,
    records or chunk table are inconsistent with each other or with the file's size."""
    size = path.stat().st_size
    if size == 0:
        raise PcsegError(f"{path}: the file is empty")
    with open(path, "rb") as fh:
        head = fh.read(HEADER_SIZES[4])
        if not head.startswith(b"LASF"):
            raise _bad(path, "it does not start with 'LASF'")
        if len(head) < HEADER_SIZES[0]:
            raise _bad(path, f"{size} bytes, shorter than a LAS header")
        major, minor = head[24], head[25]
        if major != 1 or minor not in HEADER_SIZES:
            raise _bad(path, f"version {major}.{minor}; pcseg reads LAS 1.0-1.4")
        if len(head) < HEADER_SIZES[minor]:
            raise _bad(path, f"{size} bytes, shorter than a LAS {major}.{minor} header")
        header_size, offset, n_vlrs, format_byte, record_length, legacy_count = struct.unpack_from("<HIIBHI", head, 94)
        scales_offsets = struct.unpack_from("<6d", head, 131)
        if not all(math.isfinite(v) for v in scales_offsets) or 0.0 in scales_offsets[:3]:
            raise _bad(path, "its coordinate scales or offsets are zero or not finite")
        if not HEADER_SIZES[minor] <= header_size <= offset <= size:
            raise _bad(path, f"header size {header_size} and offset to points {offset} do not fit a "
                             f"LAS {major}.{minor} file of {size} bytes")
        point_format, compressed = format_byte & 0x3F, bool(format_byte & 0x80)
        if point_format not in BASE_RECORD_SIZES:
            raise _bad(path, f"point format {point_format}; LAS defines 0-10")
        if record_length < BASE_RECORD_SIZES[point_format]:
            raise _bad(path, f"point records of {record_length} bytes, shorter than point format "
                             f"{point_format}'s {BASE_RECORD_SIZES[point_format]}")
        declared, evlrs = legacy_count, (0, 0)
        if minor >= 4:
            evlr_start, n_evlrs, wide_count = struct.unpack_from("<QIQ", head, 235)
            declared = wide_count or legacy_count
            evlrs = (evlr_start, n_evlrs) if n_evlrs else (0, 0)
        vlrs = _walk_records(path, fh, header_size, n_vlrs, offset, VLR_HEADER_SIZE)
        points_end, evlrs_intact = size, True
        if evlrs[1]:
            if offset <= evlrs[0] <= size:
                points_end = evlrs[0]
            try:  # records lost with the end of a cut file must not hide the points before them
                _walk_records(path, fh, evlrs[0], evlrs[1], size, EVLR_HEADER_SIZE)
            except PcsegError:
                evlrs_intact = False
        readable, chunk_size, chunk_table = declared, 0, None
        if compressed:
            laszip = vlrs.get(LASZIP_RECORD)
            if laszip is None:
                raise _bad(path, "compressed points but no LASzip record")
            chunk_size = _check_laszip_record(path, laszip, record_length)
            chunk_table = _chunk_table(path, fh, offset, points_end, laszip)
            readable = min(declared, (points_end - offset) * MAX_POINTS_PER_COMPRESSED_BYTE)
            if chunk_table is not None:
                held = sum(points for points, _ in chunk_table) if chunk_size == VARIABLE_CHUNKS \
                    else len(chunk_table) * chunk_size
                readable = min(readable, held)
        else:
            readable = min(declared, (points_end - offset) // record_length)
    return LasLayout((major, minor), point_format, record_length, compressed, declared, readable,
                     COPC_RECORD in vlrs, chunk_size, chunk_table, evlrs_intact)


def _walk_records(path: Path, fh, start: int, count: int, end: int, header_size: int) -> dict:
    """Check that ``count`` (extended) variable-length records from byte ``start`` end by byte ``end``;
    their data by (user id, record id)."""
    if start > end or count * header_size > end - start:
        raise _bad(path, f"{count} {'extended ' if header_size == EVLR_HEADER_SIZE else ''}variable-length "
                         f"records cannot fit in {max(end - start, 0)} bytes")
    records, position = {}, start
    length_format = "<Q" if header_size == EVLR_HEADER_SIZE else "<H"
    for _ in range(count):
        fh.seek(position)
        head = fh.read(header_size)
        if len(head) < header_size:
            raise _bad(path, "a variable-length record runs past the end of the file")
        (length,) = struct.unpack_from(length_format, head, 20)
        if position + header_size + length > end:
            raise _bad(path, f"a variable-length record of {length} bytes runs past byte {end}")
        key = (head[2:18].split(b"\0")[0], struct.unpack_from("<H", head, 18)[0])
        if key in (LASZIP_RECORD, COPC_RECORD):
            records[key] = fh.read(length)
        else:
            records.setdefault(key, b"")
        position += header_size + length
    return records


def _check_laszip_record(path: Path, data: bytes, record_length: int) -> int:
    """Check the LASzip record ``data`` against the point records; its chunk size (points)."""
    if len(data) < LASZIP_FIXED_SIZE:
        raise _bad(path, "its LASzip record is too short")
    compressor, chunk_size, n_items = struct.unpack_from("<H", data, 0)[0], struct.unpack_from("<I", data, 12)[0], \
        struct.unpack_from("<H", data, 32)[0]
    if len(data) != LASZIP_FIXED_SIZE + 6 * n_items or n_items == 0:
        raise _bad(path, "its LASzip record's item list does not match its size")
    item_bytes = sum(struct.unpack_from("<H", data, LASZIP_FIXED_SIZE + 6 * i + 2)[0] for i in range(n_items))
    if item_bytes != record_length:
        raise _bad(path, f"its LASzip items hold {item_bytes} bytes per point, its header says {record_length}")
    if compressor not in (1, 2, 3) or chunk_size == 0:
        raise _bad(path, "its LASzip record names no known compressor or a chunk size of 0")
    return chunk_size


def _chunk_table(path: Path, fh, offset: int, points_end: int, laszip: bytes) -> Optional[list]:
    """(points, bytes) of each chunk of the LAZ chunk table, or None when the table lies outside the
    file (a truncated file) or does not add up to the compressed data. PcsegError when it claims
    more chunks than the compressed data can hold."""
    import lazrs

    fh.seek(offset)
    raw = fh.read(8)
    if len(raw) < 8:
        raise _bad(path, "no compressed point data")
    (table,) = struct.unpack("<q", raw)
    if table == -1:  # written by a streaming compressor: the offset is in the file's last 8 bytes
        fh.seek(points_end - 8)
        (table,) = struct.unpack("<q", fh.read(8))
    if not offset + 8 <= table <= points_end - 8:
        return None
    fh.seek(table)
    _version, chunks = struct.unpack("<II", fh.read(8))
    if chunks * MIN_CHUNK_BYTES > table - offset - 8:
        raise _bad(path, f"its chunk table lists {chunks} chunks in {table - offset - 8} bytes of compressed points")
    fh.seek(table)
    try:
        entries = lazrs.read_chunk_table_only(fh, lazrs.LazVlr(laszip))
    except BaseException as exc:  # lazrs raises its own error, a Rust panic or IOError
        reraise_interrupts(exc)
        return None
    if sum(size for _, size in entries) != table - offset - 8:
        return None
    return entries


def reraise_interrupts(exc: BaseException) -> None:
    """Raise ``exc`` again when it is an interrupt or an exit, not a library's failure: lazrs reports
    panics with an exception derived from BaseException, so its callers catch BaseException."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        raise exc
