"""PLY reading and writing with plyfile.

Reads ascii and binary (little- and big-endian) PLY, float or double coordinates,
uchar / ushort / float colours, normals, a label-like property, and meshes (the
vertices are the points; faces are kept and written back). Writes binary
little-endian PLY, atomically.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import plyfile

from ..classes import colors_for_labels
from ..errors import PcsegError
from ..fileutil import atomic_path, check_output_path
from .cloud import Cloud, colors_to_uint8
from .labelled import output_confidence, output_labels, output_property_names

#: Colour property names tried in order: (red, green, blue).
COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"),
               ("diffuse_red", "diffuse_green", "diffuse_blue"))
#: Normal property names tried in order.
NORMAL_NAMES = (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z"))
#: Per-point label property names tried in order (the first present is ``Cloud.labels``).
LABEL_NAMES = ("label", "class", "scalar_label", "semantic", "semantic_label", "class_id",
               "scalar_Label", "scalar_Classification")

_TYPE_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2,
    "uint16": 2, "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4,
    "double": 8, "float64": 8,
}
_MAX_HEADER_BYTES = 1 << 20
#: Numpy types of PLY properties (char, uchar, short, ushort, int, uint, float, double).
PLY_TYPES = {"i1", "u1", "i2", "u2", "i4", "u4", "f4", "f8"}
#: A property name every PLY reader parses.
PLY_NAME = re.compile(r"[A-Za-z0-9_]+")


def check_ply_header(path: Path) -> None:
    """Validate what can be validated before plyfile allocates anything.

    Raises :class:`PcsegError` for an empty file, a file that is not a PLY, a header
    without ``end_header``, no vertex element, no x/y/z, or a binary file shorter than
    its header says (so that a lying header never causes a huge allocation).
    """
    size = path.stat().st_size
    if size == 0:
        raise PcsegError(f"{path}: the file is empty")
    with open(path, "rb") as fh:
        head = fh.read(min(size, _MAX_HEADER_BYTES))
    if not head.startswith(b"ply"):
        raise PcsegError(f"{path}: not a PLY file (it does not start with 'ply')")
    end = head.find(b"end_header")
    if end < 0:
        raise PcsegError(f"{path}: PLY header has no 'end_header' line (truncated or corrupt)")
    newline = head.find(b"\n", end)
    body_start = (newline + 1) if newline >= 0 else len(head)
    lines = head[:end].decode("ascii", errors="replace").splitlines()
    fmt = next((ln.split()[1] for ln in lines if ln.startswith("format ") and len(ln.split()) > 1), None)
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise PcsegError(f"{path}: PLY header has no valid 'format' line")
    # Elements in file order: [name, count, fixed row size or None when a list property exists].
    elements = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        if words[0] == "element" and len(words) >= 3:
            try:
                count = int(words[2])
            except ValueError:
                raise PcsegError(f"{path}: bad element line in PLY header: {line!r}") from None
            if count < 0:
                raise PcsegError(f"{path}: negative element count in PLY header: {line!r}")
            elements.append([words[1], count, 0, []])
        elif words[0] == "property" and elements:
            if len(words) >= 2 and words[1] == "list":
                elements[-1][2] = None
                elements[-1][3].append(words[-1])
            elif len(words) >= 3:
                if elements[-1][2] is not None:
                    elements[-1][2] += _TYPE_SIZES.get(words[1], 0)
                elements[-1][3].append(words[2])
    vertex = next((e for e in elements if e[0] == "vertex"), None)
    if vertex is None:
        raise PcsegError(f"{path}: the PLY file has no 'vertex' element")
    if not {"x", "y", "z"} <= set(vertex[3]):
        raise PcsegError(f"{path}: the vertex element has no x, y, z properties "
                         f"(found: {', '.join(vertex[3]) or 'none'})")
    if vertex[1] == 0:
        raise PcsegError(f"{path}: the cloud has zero points")
    if fmt == "ascii":
        # Every ascii row takes at least two bytes ("0\n").
        if 2 * vertex[1] > size - body_start:
            raise PcsegError(f"{path}: truncated: the header declares {vertex[1]} points but "
                             f"the file is only {size} bytes")
        return
    needed = 0
    for name, count, row, _ in elements:
        if row is None:
            break  # sizes after a list element are unknown before parsing
        needed += count * row
        if name == "vertex":
            break
    if body_start + needed > size:
        raise PcsegError(f"{path}: truncated: the header declares {vertex[1]} points "
                         f"({body_start + needed} bytes) but the file holds {size} bytes")


def _native_copy(array: np.ndarray) -> np.ndarray:
    """An in-memory copy of the structured array with every field in native byte order."""
    return np.array(array, dtype=array.dtype.newbyteorder("="), copy=True)


def _first_present(names, fields):
    return next((group for group in names if all(n in fields for n in group)), None)


def read_ply(path: os.PathLike) -> Cloud:
    """Read a PLY file into a :class:`Cloud`; every vertex property is kept by name."""
    path = Path(path)
    check_ply_header(path)
    try:
        # Memory mapping is plyfile's vectorised path for binary elements without list
        # properties (mmap=False parses point by point); the copy below releases the map.
        ply = plyfile.PlyData.read(str(path), mmap="c")
    except (plyfile.PlyParseError, ValueError, EOFError, IndexError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PcsegError(f"{path}: unreadable PLY ({reason})") from None
    vertex = _native_copy(ply["vertex"].data)
    fields = vertex.dtype.names
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    colors = _first_present(COLOR_NAMES, fields)
    normals = _first_present(NORMAL_NAMES, fields)
    label_name = next((n for n in LABEL_NAMES if n in fields), None)
    return Cloud.from_arrays(
        xyz,
        rgb=None if colors is None else colors_to_uint8(np.stack([vertex[c] for c in colors], 1)),
        normals=None if normals is None else np.stack([vertex[c] for c in normals], 1),
        labels=None if label_name is None else vertex[label_name],
        properties=vertex,
        other_elements=[e for e in ply.elements if e.name != "vertex"],
        path=path,
    )


def _write(path: Path, vertex: np.ndarray, other_elements=()) -> None:
    elements = [plyfile.PlyElement.describe(vertex, "vertex")] + list(other_elements)
    with atomic_path(path) as tmp:
        plyfile.PlyData(elements, text=False, byte_order="<").write(str(tmp))


def _coordinate_dtype(xyz: np.ndarray) -> np.dtype:
    """float64 when float32 would lose millimetres (|coordinate| >= 1e4 m), else float32."""
    finite = xyz[np.isfinite(xyz)]
    return np.dtype(np.float64 if finite.size and np.abs(finite).max() >= 1e4 else np.float32)


def write_ply(path: os.PathLike, xyz: np.ndarray, rgb: Optional[np.ndarray] = None,
              labels: Optional[np.ndarray] = None, *, overwrite: bool = False) -> Path:
    """Write points to a binary PLY, atomically.

    Args:
        xyz: (N, 3) coordinates in metres (double in the file when >= 1e4 m, else float).
        rgb: (N, 3) uint8 colours (red/green/blue uchar), or None.
        labels: (N,) integer labels (``label`` int), or None.
    """
    path = check_output_path(path, overwrite=overwrite)
    xyz = np.asarray(xyz)
    ctype = _coordinate_dtype(xyz)
    dtype = [("x", ctype), ("y", ctype), ("z", ctype)]
    if rgb is not None:
        dtype += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if labels is not None:
        dtype += [("label", "i4")]
    vertex = np.empty(xyz.shape[0], dtype=dtype)
    for i, axis in enumerate("xyz"):
        vertex[axis] = xyz[:, i]
    if rgb is not None:
        for i, channel in enumerate(("red", "green", "blue")):
            vertex[channel] = np.asarray(rgb)[:, i]
    if labels is not None:
        vertex["label"] = labels
    _write(path, vertex)
    return path


def write_labelled_ply(path: os.PathLike, cloud: Cloud, labels: np.ndarray,
                       confidence: Optional[np.ndarray] = None, *, keep_colors: bool = False,
                       overwrite: bool = False) -> Path:
    """Write ``cloud`` with per-point ``labels`` (N,) to a binary PLY, atomically.

    Every input point and property is kept. An integer ``label`` property is added, and a
    float ``confidence`` (N,) in [0, 1] when given; input properties of those names are kept
    as ``label_input`` and ``confidence_input``. Colours become the class colours of
    :mod:`pcseg.classes` (red/green/blue uchar), unless ``keep_colors`` and the input has
    colours. Invalid (non-finite) points get label 255, confidence 0 and black. Refuses to
    overwrite the input and, unless ``overwrite``, an existing output.
    """
    inputs = [cloud.path] if cloud.path is not None else []
    path = check_output_path(path, inputs=inputs, overwrite=overwrite)
    labels = output_labels(path, cloud, labels)
    confidence = None if confidence is None else output_confidence(path, cloud, confidence)
    base = cloud.properties
    if base is None:
        absolute = cloud.absolute_xyz()
        absolute[~cloud.valid] = np.nan
        ctype = _coordinate_dtype(absolute)
        base = np.empty(len(cloud), dtype=[("x", ctype), ("y", ctype), ("z", ctype)])
        for i, axis in enumerate("xyz"):
            base[axis] = absolute[:, i]
    vertex = labelled_vertex(base, labels, confidence, keep_colors and cloud.rgb is not None, target=path)
    _write(path, vertex, cloud.other_elements)
    return path


def ply_fields(fields: list, target: Optional[Path] = None) -> list:
    """``fields`` ((name, numpy type) of output rows) as PLY holds them: a name with characters besides
    ASCII letters, digits and ``_`` gets ``_`` for each (made unique), a type PLY lacks becomes
    float64 (64-bit integers: exact up to 2**53) or, for booleans, uint8; the changes said in one
    warning (naming the output ``target`` when given)."""
    used, safe, changes = {name for name, _ in fields}, [], []
    for name, kind in fields:
        kind = np.dtype(kind)
        new_name = name
        if not PLY_NAME.fullmatch(name):
            new_name = re.sub(r"[^A-Za-z0-9_]", "_", name) or "property"
            while new_name in used:
                new_name += "_"
            used.add(new_name)
            changes.append(f"{name!r} renamed {new_name!r}")
        if kind.newbyteorder("=").str[1:] not in PLY_TYPES:
            new_kind = np.dtype("u1") if kind.kind == "b" else np.dtype("f8")
            changes.append(f"{new_name!r} ({kind.name}) written as {'uchar' if kind.kind == 'b' else 'double'}")
            kind = new_kind
        safe.append((new_name, kind))
    if changes:
        where = f"{target}: " if target is not None else ""
        warnings.warn(f"{where}PLY cannot hold every input property as it is: {'; '.join(changes)}", stacklevel=3)
    return safe


def labelled_vertex(base: np.ndarray, labels: np.ndarray, confidence: Optional[np.ndarray],
                    keep_input_colors: bool, target: Optional[Path] = None) -> np.ndarray:
    """The output rows of :func:`write_labelled_ply` for input rows ``base`` (n,), checked ``labels``
    (n,) and ``confidence`` (n,) or None: ``base``'s fields (renamed when they clash with the added
    ones, converted as :func:`ply_fields` says for the output ``target``), its colours replaced by the
    class colours unless ``keep_input_colors``, ``label``, ``confidence``."""
    added = ("label",) if confidence is None else ("label", "confidence")
    input_colors = _first_present(COLOR_NAMES, base.dtype.names)
    dropped = set() if keep_input_colors or input_colors is None else set(input_colors)
    kept = output_property_names([n for n in base.dtype.names if n not in dropped], added)
    fields = ply_fields([(kept[name], base.dtype[name]) for name in kept], target)
    kept = {name: out_name for name, (out_name, _) in zip(kept, fields)}
    if not keep_input_colors:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    fields.append(("label", "i4"))
    if confidence is not None:
        fields.append(("confidence", "f4"))
    vertex = np.empty(len(base), dtype=fields)
    for name, out_name in kept.items():
        vertex[out_name] = base[name]
    if not keep_input_colors:
        colors = colors_for_labels(labels)
        for i, channel in enumerate(("red", "green", "blue")):
            vertex[channel] = colors[:, i]
    vertex["label"] = labels
    if confidence is not None:
        vertex["confidence"] = confidence
    return vertex


def ply_header(dtype: np.dtype, count: int) -> bytes:
    """The header of a binary little-endian PLY holding ``count`` rows of ``dtype`` as its vertices."""
    element = plyfile.PlyElement.describe(np.empty(0, dtype=dtype), "vertex")
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    lines += [str(prop) for prop in element.properties]
    return ("\n".join(lines + ["end_header"]) + "\n").encode("ascii")
