"""Labelled LAS / LAZ output with laspy (``.laz`` compressed through lazrs).

``classification`` takes the ASPRS code of each point's class (:mod:`pcseg.io.asprs`);
extra-bytes dimensions add the exact class id (``label``, uint8, 255 unlabelled) and
``confidence`` (float32, [0, 1]).

* A LAS/LAZ input is copied record by record, in chunks of :data:`CHUNK_POINTS`: the
  header (version, point format, scales, offsets, VLRs and EVLRs such as the CRS) and
  every dimension are kept bit for bit; only ``classification`` changes, the input's
  classification being kept as ``classification_input``. A pcseg output segmented again
  has its ``label`` and ``confidence`` replaced and its ``classification_input`` kept; an
  input dimension of one of those names that pcseg did not write is kept, and pcseg's
  takes a free name (``label_pcseg``), said in one line. The creation date and a LAS 1.0
  version are kept as the input's bytes; a COPC input is written as plain LAS/LAZ (its
  index records dropped), said in one line. Only the points the reader read are written
  (a file holding fewer than its header declares).
* Any other input becomes LAS 1.4, point format 7 with colours (8-bit colours scaled by
  257 to 16 bits) or 6 without, 1 mm scale, offset at the cloud's origin; every other
  numeric input property becomes an extra-bytes dimension of its type (named
  ``<name>_input`` when LAS or pcseg already uses the name). Non-finite points, which LAS
  cannot store, are kept at the origin with the ``withheld`` flag, class 0, label 255.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
import numpy as np

from ..errors import PcsegError
from ..fileutil import atomic_path, check_output_path
from .asprs import asprs_codes
from .cloud import Cloud
from .las import LasFile, las_errors
from .labelled import output_confidence, output_labels, output_property_names
from .ply import COLOR_NAMES

#: Dimensions pcseg adds: name -> (numpy type, description of at most 32 characters).
ADDED_DIMENSIONS = {
    "label": ("u1", "pcseg class id (S3DIS), 255 none"),
    "confidence": ("f4", "probability of the label, 0-1"),
}
#: Where the classification of a LAS input is kept.
INPUT_CLASSIFICATION = "classification_input"
#: Points copied per chunk from a LAS/LAZ input.
CHUNK_POINTS = 1_000_000
#: Coordinate resolution (metres) of outputs made from non-LAS inputs.
NEW_FILE_SCALE = 0.001
#: Appended to one of pcseg's dimension names when a LAS input has a dimension of that name.
PCSEG_SUFFIX = "_pcseg"
#: The user id of a COPC file's index records (its info VLR and hierarchy EVLR).
COPC_USER_ID = "copc"
#: Bytes of the creation day and year, and the byte of the minor version, in a LAS header.
HEADER_DATE = slice(90, 94)
HEADER_MINOR_VERSION = 25
#: LAS extra-bytes names are at most this many characters.
MAX_NAME_LENGTH = 32


def is_las_cloud(cloud: Cloud) -> bool:
    """True when ``cloud`` was read from a .las or .laz file."""
    return cloud.path is not None and cloud.path.suffix.lower() in (".las", ".laz")


def _pcseg_dimensions() -> list:
    import laspy
    return [laspy.ExtraBytesParams(name, kind, description)
            for name, (kind, description) in ADDED_DIMENSIONS.items()]


def _input_extra_dimensions(header) -> dict:
    """Extra dimensions of a LAS header by name: DimensionInfo."""
    return {name: header.point_format.dimension_by_name(name)
            for name in header.point_format.extra_dimension_names}


def _is_pcseg_dimension(info, param) -> bool:
    """True when the input dimension ``info`` is the one pcseg wrote as ``param`` (an earlier pcseg output)."""
    return (info.num_elements == 1 and info.scales is None and info.dtype == np.dtype(param.type)
            and info.description == param.description)


def _free_name(name: str, taken: set) -> str:
    """``name`` + ``PCSEG_SUFFIX`` (then a number) not among ``taken``."""
    candidate, number = name + PCSEG_SUFFIX, 2
    while candidate in taken:
        candidate, number = f"{name}{PCSEG_SUFFIX}{number}", number + 1
    return candidate


def _output_dimensions(header) -> tuple[dict, list, list]:
    """pcseg's dimensions in the output of a LAS input of ``header``: (output name by pcseg's name, the
    ExtraBytesParams to add, (name, output name) of those moved to a free name because the input has a
    dimension of that name that pcseg did not write). An earlier pcseg output's own ``label`` and
    ``confidence`` are reused (replaced), its ``classification_input`` kept."""
    import laspy

    existing = _input_extra_dimensions(header)
    taken = set(header.point_format.dimension_names)
    names, added, moved = {}, [], []
    for param in _pcseg_dimensions() + [laspy.ExtraBytesParams(INPUT_CLASSIFICATION, "u1", "the input's classification")]:
        info = existing.get(param.name)
        if info is not None and _is_pcseg_dimension(info, param):
            names[param.name] = param.name
            continue
        name = param.name if param.name not in taken else _free_name(param.name, taken)
        taken.add(name)
        if name != param.name:
            moved.append((param.name, name))
        names[param.name] = name
        added.append(laspy.ExtraBytesParams(name, param.type, param.description))
    return names, added, moved


def _output_header(source: Path, header):
    """The header of the labelled copy of the LAS input ``source`` of ``header`` (copied): pcseg's
    dimensions added, a COPC file's index records dropped; (header, :func:`_output_dimensions`'s
    result). PcsegError when laspy cannot make it."""
    import laspy

    with las_errors(source, "cannot be copied to LAS"):
        out = copy.deepcopy(header)
        if out.version.minor == 0:  # laspy writes LAS 1.2, the same layout; the version byte is restored
            out.version = laspy.header.Version(1, 2)
        for records in (out.vlrs, out.evlrs or []):
            records[:] = [r for r in records if r.user_id != COPC_USER_ID]
        dimensions = _output_dimensions(out)
        out.add_extra_dims(dimensions[1])
    return out, dimensions


def _new_point_format(cloud: Cloud) -> int:
    """LAS point format of a non-LAS cloud: 7 (with colours) or 6."""
    return 7 if cloud.rgb is not None else 6


def _new_file_properties(cloud: Cloud) -> list[tuple[str, str, np.ndarray]]:
    """(output name, input name, numpy type) of the input properties a non-LAS cloud adds as extra bytes."""
    if cloud.properties is None:
        return []
    import laspy

    point_format = laspy.PointFormat(_new_point_format(cloud))
    colours = {name for group in COLOR_NAMES for name in group} if cloud.rgb is not None else set()
    kinds = cloud.properties.dtype
    names = [name for name in kinds.names if name not in ("x", "y", "z") and name not in colours
             and not kinds[name].shape and kinds[name].kind in "uif"]
    renamed = output_property_names(names, set(point_format.dimension_names) | set(ADDED_DIMENSIONS))
    return [(renamed[name], name, kinds[name]) for name in names]


def check_las_output(path: os.PathLike, cloud: Cloud) -> None:
    """Raise :class:`PcsegError` when ``cloud`` cannot be written to LAS at ``path``, before any work.

    A LAS input must still hold ``len(cloud)`` points and its output header must be possible;
    a non-LAS cloud must fit the 1 mm grid (an extent under 2,147 km) and have property names LAS
    can hold.
    """
    if is_las_cloud(cloud):
        source = LasFile(cloud.path)
        if source.layout.readable < len(cloud):
            raise PcsegError(f"{cloud.path}: holds {source.layout.readable} points, but the cloud has {len(cloud)}")
        with source.open() as reader:
            _output_header(cloud.path, reader.header)
        return
    extent = float(np.abs(cloud.xyz[cloud.valid]).max(initial=0.0))
    if extent / NEW_FILE_SCALE >= 2**31:
        raise PcsegError(f"{path}: the cloud spans {extent:.0f} m, more than LAS holds at "
                         f"{NEW_FILE_SCALE * 1000:g} mm resolution")
    for out_name, _, _ in _new_file_properties(cloud):
        if len(out_name) > MAX_NAME_LENGTH:
            raise PcsegError(f"{path}: the property name '{out_name}' is longer than the "
                             f"{MAX_NAME_LENGTH} characters LAS allows; write a .ply output instead")


def write_labelled_las(path: os.PathLike, cloud: Cloud, labels: np.ndarray, confidence: np.ndarray, *,
                       overwrite: bool = False) -> Path:
    """Write ``cloud`` with ``labels`` (N,) and ``confidence`` (N,) to ``path`` (.las or .laz), atomically.

    See the module for what is kept. Refuses to overwrite the input and, unless ``overwrite``,
    an existing output; raises :class:`PcsegError` as :func:`check_las_output` does.
    """
    inputs = [cloud.path] if cloud.path is not None else []
    path = check_output_path(path, inputs=inputs, overwrite=overwrite)
    labels = output_labels(path, cloud, labels)
    confidence = output_confidence(path, cloud, confidence)
    check_las_output(path, cloud)
    compress = path.suffix.lower() == ".laz"
    with atomic_path(path) as tmp:
        if is_las_cloud(cloud):
            _copy_las(cloud.path, tmp, labels, confidence, compress)
        else:
            _new_las(cloud, labels, confidence).write(str(tmp), do_compress=compress)
    return path


def _copy_las(source: Path, target: Path, labels: np.ndarray, confidence: np.ndarray, compress: bool) -> None:
    """Copy the first ``len(labels)`` points of the LAS/LAZ ``source`` (those the reader read) to ``target``
    chunk by chunk with pcseg's dimensions set; the header's creation date (and version 1.0) restored."""
    import laspy

    las = LasFile(source)
    with las.open() as reader:
        header, (names, added, moved) = _output_header(source, reader.header)
        input_evlrs = reader.header.evlrs
    _tell_changes(source, moved, las.layout, compress)
    # an earlier pcseg output's classification_input is kept, not replaced by its ASPRS codes
    keep_input_classification = any(p.name == names[INPUT_CLASSIFICATION] for p in added)
    with las_errors(source, "cannot be copied to LAS"):
        with laspy.open(str(target), mode="w", header=header, do_compress=compress) as writer:
            start = 0
            for chunk in las.batches(CHUNK_POINTS, limit=len(labels)):
                stop = start + len(chunk)
                records = laspy.ScaleAwarePointRecord.zeros(len(chunk), header=header)
                for name in chunk.array.dtype.names:
                    records.array[name] = chunk.array[name]
                if keep_input_classification:
                    records[names[INPUT_CLASSIFICATION]] = np.asarray(chunk.classification)
                records.classification = asprs_codes(labels[start:stop])
                records[names["label"]] = labels[start:stop]
                records[names["confidence"]] = confidence[start:stop]
                writer.write_points(records)
                start = stop
            evlrs = [r for r in input_evlrs or [] if r.user_id != COPC_USER_ID]
            if evlrs:
                writer.write_evlrs(laspy.vlrs.vlrlist.VLRList(evlrs))
    if start != len(labels):
        raise PcsegError(f"{source}: holds {start} points now, but {len(labels)} were read and segmented")
    _restore_header_fields(source, target)


def _tell_changes(source: Path, moved: list, layout, compress: bool) -> None:
    """Warn (one line each) about pcseg dimensions written under free names, a COPC input written plainly
    and extended records lost with the end of a cut file."""
    if moved:
        warnings.warn(f"{source}: has its own {', '.join(repr(a) for a, _ in moved)} dimension"
                      f"{'s' if len(moved) > 1 else ''}, kept as it is; pcseg writes "
                      f"{', '.join(f'{a} as {b!r}' for a, b in moved)}", stacklevel=3)
    if not layout.evlrs_intact:
        warnings.warn(f"{source}: its extended variable-length records lie beyond the end of the file; "
                      "they are not copied", stacklevel=3)
    if layout.copc:
        warnings.warn(f"{source}: a COPC file; written as a plain {'LAZ' if compress else 'LAS'} file "
                      "(its spatial index is not kept)", stacklevel=3)


def _restore_header_fields(source: Path, target: Path) -> None:
    """Give ``target`` the raw creation day and year of ``source``'s header (laspy writes today's date
    for one it cannot read, such as 0) and, for a LAS 1.0 input, its version byte."""
    with open(source, "rb") as fh:
        head = fh.read(HEADER_DATE.stop)
    with open(target, "r+b") as fh:
        fh.seek(HEADER_DATE.start)
        fh.write(head[HEADER_DATE])
        if head[HEADER_MINOR_VERSION] == 0:
            fh.seek(HEADER_MINOR_VERSION)
            fh.write(b"\0")


def _new_las(cloud: Cloud, labels: np.ndarray, confidence: np.ndarray):
    """A LAS 1.4 LasData of a non-LAS ``cloud`` (see the module)."""
    import laspy

    header = laspy.LasHeader(version="1.4", point_format=_new_point_format(cloud))
    header.scales = np.full(3, NEW_FILE_SCALE)
    header.offsets = cloud.origin
    properties = _new_file_properties(cloud)
    header.add_extra_dims(_pcseg_dimensions() + [laspy.ExtraBytesParams(out_name, kind, "input property")
                                                 for out_name, _, kind in properties])
    las = laspy.LasData(header)
    las.x, las.y, las.z = (cloud.absolute_xyz()[:, i] for i in range(3))
    if cloud.rgb is not None:
        las.red, las.green, las.blue = (cloud.rgb[:, i].astype(np.uint16) * 257 for i in range(3))
    las.withheld = ~cloud.valid
    las.classification = asprs_codes(labels)
    las["label"] = labels
    las["confidence"] = confidence
    for out_name, name, _ in properties:
        las[out_name] = cloud.properties[name]
    return las
