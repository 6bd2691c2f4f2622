"""Labelled LAS / LAZ output with laspy (``.laz`` compressed through lazrs).

``classification`` takes the ASPRS code of each point's class (:mod:`pcseg.io.asprs`);
extra-bytes dimensions add the exact class id (``label``, uint8, 255 unlabelled) and
``confidence`` (float32, [0, 1]).

* A LAS/LAZ input is copied record by record, in chunks of :data:`CHUNK_POINTS`: the
  header (version, point format, scales, offsets, VLRs and EVLRs such as the CRS) and
  every dimension are kept bit for bit; only ``classification`` changes, the input's
  classification being kept as ``classification_input``. A pcseg output segmented again
  has its ``label`` and ``confidence`` replaced and its ``classification_input`` kept.
* Any other input becomes LAS 1.4, point format 7 with colours (8-bit colours scaled by
  257 to 16 bits) or 6 without, 1 mm scale, offset at the cloud's origin; every other
  numeric input property becomes an extra-bytes dimension of its type (named
  ``<name>_input`` when LAS or pcseg already uses the name). Non-finite points, which LAS
  cannot store, are kept at the origin with the ``withheld`` flag, class 0, label 255.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
import numpy as np

from ..errors import PcsegError
from ..fileutil import atomic_path, check_output_path
from .asprs import asprs_codes
from .cloud import Cloud
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


def _dimensions_to_add(source: Path, header) -> list:
    """The pcseg extra dimensions a LAS input lacks; PcsegError when one it has differs in type."""
    import laspy

    existing = _input_extra_dimensions(header)
    wanted = _pcseg_dimensions() + [laspy.ExtraBytesParams(INPUT_CLASSIFICATION, "u1", "the input's classification")]
    missing = []
    for param in wanted:
        info = existing.get(param.name)
        if info is None:
            missing.append(param)
        elif info.num_elements != 1 or info.scales is not None or info.dtype != np.dtype(param.type):
            raise PcsegError(f"{source}: has a '{param.name}' dimension of another type than pcseg's "
                             f"{np.dtype(param.type)}; write a .ply output instead")
    return missing


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

    A LAS input must still hold ``len(cloud)`` points and have no extra dimension named like
    pcseg's of another type; a non-LAS cloud must fit the 1 mm grid (an extent under 2,147 km)
    and have property names LAS can hold.
    """
    import laspy

    if is_las_cloud(cloud):
        with laspy.open(str(cloud.path)) as reader:
            if reader.header.point_count != len(cloud):
                raise PcsegError(f"{cloud.path}: holds {reader.header.point_count} points, "
                                 f"but the cloud has {len(cloud)}")
            _dimensions_to_add(cloud.path, reader.header)
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
    """Copy the LAS/LAZ ``source`` to ``target`` chunk by chunk with pcseg's dimensions set."""
    import laspy

    with laspy.open(str(source)) as reader:
        header = copy.deepcopy(reader.header)
        new_dimensions = _dimensions_to_add(source, reader.header)
        header.add_extra_dims(new_dimensions)
        keep_input_classification = INPUT_CLASSIFICATION in {p.name for p in new_dimensions}
        with laspy.open(str(target), mode="w", header=header, do_compress=compress) as writer:
            start = 0
            for chunk in reader.chunk_iterator(CHUNK_POINTS):
                stop = start + len(chunk)
                records = laspy.ScaleAwarePointRecord.zeros(len(chunk), header=header)
                for name in chunk.array.dtype.names:
                    records.array[name] = chunk.array[name]
                if keep_input_classification:
                    records[INPUT_CLASSIFICATION] = np.asarray(chunk.classification)
                records.classification = asprs_codes(labels[start:stop])
                records["label"] = labels[start:stop]
                records["confidence"] = confidence[start:stop]
                writer.write_points(records)
                start = stop
            if reader.header.evlrs:
                writer.write_evlrs(reader.header.evlrs)


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
