"""Rebuild the real labelled indoor rooms listed in ``sources.yaml`` from their named sources.

Every file of the manifest is read at its repository's commit from a fetched snapshot
(``MIRROR/<owner>+<name>/repo`` or ``.../repo/.git``, a bare git directory read with
``git cat-file``) or, failing that, from a copy under ``SHARED/<source's shared folder>``; its
sha256 must match the manifest's before it is written (atomically) to ``OUT/<out>``. Where a
source splits one object over several files that repeat each other's points, the files sharing an
``out`` are merged with the repeats dropped and the result checked against the manifest's
``merged`` sha256. Outputs already in ``OUT`` with the right sha256 are kept, so a re-run resumes. Nothing is fetched
from the network. ``OUT`` must lie outside this repository: the data's terms forbid
redistributing it.

``OUT`` ends with the raw layouts the preparers read (``scannet/``, ``s3dis/``, ``ply/``),
``split.yaml`` (the val and train rooms of each layout) and ``STATUS.md`` (what is there).

    python datasets/real/rebuild.py [--out DIR] [--mirror DIR] [--shared DIR]

Exit status: 0 when every file is in place or was skipped because its source is absent,
1 when a file failed its checksum (it is not written), 2 on bad input (one-line error).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from pcseg.errors import PcsegError  # noqa: E402
from pcseg.fileutil import atomic_path  # noqa: E402

MANIFEST = Path(__file__).resolve().parent / "sources.yaml"
DEFAULT_OUT = REPO_ROOT.parent / "data" / "real_raw"
DEFAULT_SHARED = REPO_ROOT.parent / "shared"
DEFAULT_MIRROR = Path("/work/.mirror")

#: Kept for independent evaluation: never used for training nor selection, from any source.
DENIED_REPOSITORIES = frozenset({"open-mmlab/mmdetection3d", "siddharth277/dbscan",
                                 "winerdecoder/s3dis-structural-reconstruction",
                                 "orangesodahub/small-3d-semantic-segmentation-model",
                                 "wangningsen/fdu-prml-2024-final-pj"})
DENIED_SCANNET_ROOMS = frozenset({"scene0000", "scene0009", "scene0010", "scene0011"})
DENIED_S3DIS_ROOMS = frozenset({"Area_1/conferenceRoom_1", "Area_5/storage_3", "Area_6/pantry_1",
                                "Area_6/hallway_4"} | {f"Area_6/office_{i}" for i in (1, 10, 11, 15, 21, 26, 31, 35)})

LAYOUTS = ("scannet", "s3dis", "ply")
SPLITS = ("train", "val")
KINDS = ("rgbd", "lidar")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
SCANNET_ROOM = re.compile(r"scene\d{4}")
S3DIS_ROOM = re.compile(r"(Area_\d+)[/_]([A-Za-z]+_\d+)")  # Area_1/office_2 or Area_1_office_2
#: The part of a file name that differs between the files of one scan (ScanNet's pairs).
SCAN = re.compile(r"(_vert\.npy|_sem_label\.npy|_vh_clean_2\.ply|_vh_clean_2\.labels\.ply)$")


def denied(repository: str, *names: str) -> str | None:
    """Why ``repository`` or one of ``names`` (room names, paths) is kept out, or None."""
    if repository.lower() in DENIED_REPOSITORIES:
        return f"repository {repository} is kept for independent evaluation"
    for name in names:
        rooms = set(SCANNET_ROOM.findall(name)) & DENIED_SCANNET_ROOMS
        rooms |= {f"{area}/{room}" for area, room in S3DIS_ROOM.findall(name)} & DENIED_S3DIS_ROOMS
        if rooms:
            return f"{sorted(rooms)[0]} is kept for independent evaluation"
    return None


@dataclass(frozen=True)
class Source:
    name: str
    repository: str
    commit: str
    licence: str
    kind: str
    shared: str | None


@dataclass(frozen=True)
class FileEntry:
    """One output file: ``path`` in the repository, ``out`` under the output folder, ``sha256``.

    ``copy``: for a file converted from the repository's files (``path`` names what it was made
    from), the converted file's path under the shared folder; ``sha256`` is then that copy's.
    """

    path: str
    out: str
    sha256: str
    copy: str | None = None


@dataclass(frozen=True)
class Room:
    room: str
    layout: str
    split: str
    source: Source
    files: tuple[FileEntry, ...]
    merged: dict[str, str] = field(default_factory=dict)

    def outputs(self) -> dict[str, list[FileEntry]]:
        """Each output path with the files written to it (several: merged, see :func:`merge_lines`)."""
        groups: dict[str, list[FileEntry]] = {}
        for f in self.files:
            groups.setdefault(f.out, []).append(f)
        return groups

    def expected_sha256(self, out: str) -> str:
        """The sha256 the output ``out`` must have: its file's, or the merged digest."""
        group = self.outputs()[out]
        return group[0].sha256 if len(group) == 1 else self.merged[out]


def _require(entry: dict, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict):
        raise PcsegError(f"{where}: expected a mapping")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise PcsegError(f"{where}: missing {', '.join(missing)}")


def _check_out(out: str, where: str) -> str:
    parts = Path(out).parts
    if Path(out).is_absolute() or ".." in parts or len(parts) < 2 or parts[0] not in LAYOUTS:
        raise PcsegError(f"{where}: out must be a relative path under {', '.join(LAYOUTS)}, got {out!r}")
    return parts[0]


def _check_room_owns_files(room: str, layout: str, files: list[FileEntry], where: str) -> None:
    """Every output file must belong to ``room``, so that a split by room is a split by file.

    ScanNet: ``scannet/<room>_SS_...``; S3DIS: ``s3dis/<room>/...``; PLY: ``ply/<room>.ply``.
    """
    for f in files:
        out = Path(f.out)
        owned = {"scannet": len(out.parts) == 2 and out.name.startswith(f"{room}_"),
                 "s3dis": out.parts[1:1 + len(Path(room).parts)] == Path(room).parts,
                 "ply": out.relative_to(layout).with_suffix("").as_posix() == room}[layout]
        if not owned:
            raise PcsegError(f"{where}: {f.out} does not belong to room {room}")


def _load_sources(sources: dict, path: Path) -> dict[str, Source]:
    checked = {}
    for name, src in (sources or {}).items():
        where = f"{path}: source {name}"
        _require(src, ("repository", "commit", "licence", "kind"), where)
        if not COMMIT.match(str(src["commit"])):
            raise PcsegError(f"{where}: commit must be a full 40-hex-digit hash")
        if src["kind"] not in KINDS:
            raise PcsegError(f"{where}: kind must be one of {', '.join(KINDS)}")
        why = denied(src["repository"])
        if why:
            raise PcsegError(f"{where}: {why}")
        checked[name] = Source(name, src["repository"], src["commit"], src["licence"], src["kind"],
                               src.get("shared"))
    return checked


def _load_room(entry: dict, sources: dict[str, Source], where: str) -> Room:
    _require(entry, ("room", "source", "split", "files"), where)
    if entry["source"] not in sources:
        raise PcsegError(f"{where}: unknown source {entry['source']!r}")
    if entry["split"] not in SPLITS:
        raise PcsegError(f"{where}: split must be train or val, got {entry['split']!r}")
    files = []
    for j, f in enumerate(entry["files"] or []):
        _require(f, ("path", "out", "sha256"), f"{where}.files[{j}]")
        if not SHA256.match(str(f["sha256"])):
            raise PcsegError(f"{where}.files[{j}]: sha256 must be 64 lowercase hex digits")
        files.append(FileEntry(f["path"], f["out"], f["sha256"], f.get("copy")))
    if not files:
        raise PcsegError(f"{where}: no files")
    source = sources[entry["source"]]
    why = denied(source.repository, entry["room"], *(f.path for f in files), *(f.out for f in files),
                 *(f.copy for f in files if f.copy))
    if why:
        raise PcsegError(f"{where}: {why}")
    layouts = {_check_out(f.out, where) for f in files}
    if len(layouts) != 1:
        raise PcsegError(f"{where}: a room's files must share one layout, got {sorted(layouts)}")
    layout = layouts.pop()
    _check_room_owns_files(entry["room"], layout, files, where)
    room = Room(entry["room"], layout, entry["split"], source, tuple(files), dict(entry.get("merged") or {}))
    shared_outs = {out for out, group in room.outputs().items() if len(group) > 1}
    if set(room.merged) != shared_outs:
        raise PcsegError(f"{where}: merged must give the sha256 of exactly the outputs written from "
                         f"several files ({', '.join(sorted(shared_outs)) or 'none'})")
    for out, digest in room.merged.items():
        if not SHA256.match(str(digest)) or not out.endswith(".txt"):
            raise PcsegError(f"{where}: merged {out}: a .txt output and 64 lowercase hex digits expected")
    return room


def load_manifest(path: Path) -> list[Room]:
    """The manifest's rooms, checked; raises :class:`PcsegError` on any fault or denied name."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PcsegError(f"{path}: unreadable manifest ({str(exc).splitlines()[0]})") from None
    _require(data, ("sources", "rooms"), str(path))
    sources = _load_sources(data["sources"], path)
    rooms = []
    for i, entry in enumerate(data["rooms"] or []):
        where = f"{path}: rooms[{i}]"
        room = _load_room(entry, sources, where)
        if room.room in {r.room for r in rooms}:
            raise PcsegError(f"{where}: room {room.room} is listed twice (the split is by room: "
                             "every scan of a room belongs in its one entry)")
        rooms.append(room)
    return rooms


def check_output_folder(out: Path) -> Path:
    """``out`` resolved; raises :class:`PcsegError` when it lies inside this repository."""
    resolved = out.resolve()
    if resolved == REPO_ROOT or REPO_ROOT in resolved.parents:
        raise PcsegError(f"{out}: the output folder must lie outside the repository {REPO_ROOT} "
                         "(the data's terms forbid redistributing it)")
    if resolved.exists() and not resolved.is_dir():
        raise PcsegError(f"{out}: exists and is not a folder")
    return resolved


def mirror_git_dir(mirror: Path, repository: str) -> Path | None:
    """The git directory of ``repository``'s fetched snapshot under ``mirror``, or None."""
    base = mirror / repository.replace("/", "+") / "repo"
    for candidate in (base / ".git", base):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None


def read_blob(git_dir: Path, commit: str, path: str) -> bytes | None:
    """The bytes of ``path`` at ``commit``, or None when the snapshot lacks them."""
    result = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "blob", f"{commit}:{path}"],
                            capture_output=True)
    return result.stdout if result.returncode == 0 else None


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Report:
    """What a rebuild did, file by file (``out`` paths), with reasons for skips and refusals."""

    written: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


def _fetch(room: Room, entry: FileEntry, mirror: Path, shared: Path) -> tuple[bytes | None, str]:
    """The file's bytes and where they came from, or (None, why they are absent)."""
    src = room.source
    if entry.copy:
        copy = shared / entry.copy
        if copy.is_file():
            return copy.read_bytes(), str(copy)
        return None, (f"source absent: no copy {copy} (a conversion of {src.repository}@{src.commit[:7]} "
                      f"{entry.path}, see datasets/REAL.md)")
    git_dir = mirror_git_dir(mirror, src.repository)
    if git_dir is not None:
        data = read_blob(git_dir, src.commit, entry.path)
        if data is not None:
            return data, f"{src.repository}@{src.commit[:7]}"
    if src.shared:
        copy = shared / src.shared / Path(entry.path).name
        if copy.is_file():
            return copy.read_bytes(), str(copy)
    if git_dir is None:
        return None, f"source absent: no snapshot of {src.repository} under {mirror}" + (
            f" and no copy under {shared / src.shared}" if src.shared else "")
    return None, (f"source absent: {entry.path} is not in the snapshot of {src.repository} at "
                  f"{src.commit[:7]} (snapshots lack files of 4 MiB and more)")


def merge_lines(parts: list[bytes]) -> bytes:
    """The lines of ``parts`` in order, each kept once (repeated points dropped), blank lines out.

    Used where a source splits one object over several files that repeat each other's points.
    """
    seen, kept = set(), []
    for part in parts:
        for line in part.splitlines():
            if line.strip() and line not in seen:
                seen.add(line)
                kept.append(line)
    return b"\n".join(kept) + b"\n"


def _build_output(room: Room, out: str, mirror: Path, shared: Path) -> tuple[bytes | None, str]:
    """The verified bytes of output ``out`` of ``room``, or (None, why not); see :class:`Report`."""
    parts, origins = [], []
    for entry in room.outputs()[out]:
        data, origin = _fetch(room, entry, mirror, shared)
        if data is None:
            return None, f"skip:{origin}"
        got = sha256_of(data)
        if got != entry.sha256:
            return None, (f"refuse:{entry.path}: sha256 {got[:12]}... from {origin}, "
                          f"manifest says {entry.sha256[:12]}...")
        parts.append(data)
        origins.append(origin)
    data = parts[0] if len(parts) == 1 else merge_lines(parts)
    if sha256_of(data) != room.expected_sha256(out):
        return None, f"refuse:merged sha256 {sha256_of(data)[:12]}... differs from the manifest's"
    return data, origins[0]


def rebuild(rooms: list[Room], out: Path, mirror: Path, shared: Path, progress: bool = True) -> Report:
    """Put every output of ``rooms`` under ``out`` (verified, atomic, resumable); see the module doc."""
    from tqdm import tqdm

    out = check_output_folder(out)
    report = Report()
    outputs = [(room, name) for room in rooms for name in room.outputs()]
    for room, name in tqdm(outputs, desc="rebuild", unit="file", disable=not progress):
        target = out / name
        if target.is_file() and file_sha256(target) == room.expected_sha256(name):
            report.present.append(name)
            continue
        data, why = _build_output(room, name, mirror, shared)
        if data is None:
            kind, reason = why.split(":", 1)
            (report.skipped if kind == "skip" else report.refused)[name] = reason
            continue
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        report.written.append(name)
    write_split(rooms, out)
    write_status(rooms, out, report)
    return report


def _on_disk(room: Room, out: Path) -> bool:
    return all((out / name).is_file() for name in room.outputs())


def write_split(rooms: list[Room], out: Path) -> None:
    """``OUT/split.yaml``: per layout, the train and val rooms whose files are all on disk."""
    split = {layout: {s: [] for s in SPLITS} for layout in LAYOUTS}
    for room in rooms:
        if _on_disk(room, out):
            split[room.layout][room.split].append(room.room)
    text = ("# Room-level split of the real rooms under this folder (from datasets/real/sources.yaml;\n"
            "# decided before any training, never changed). ScanNet: every scan sceneRRRR_SS of a room\n"
            "# sceneRRRR sits on that room's side.\n" + yaml.safe_dump(split, sort_keys=False))
    with atomic_path(out / "split.yaml") as tmp:
        tmp.write_text(text)


def write_status(rooms: list[Room], out: Path, report: Report) -> None:
    """``OUT/STATUS.md``: rooms, scans and files on disk per layout, kind and split."""
    rows = defaultdict(lambda: Counter())
    for room in rooms:
        if _on_disk(room, out):
            key = (room.layout, room.source.kind, room.split)
            rows[key]["rooms"] += 1
            rows[key]["files"] += len(room.outputs())
            rows[key]["scans"] += (len({SCAN.sub("", Path(f.out).name) for f in room.files})
                                   if room.layout == "scannet" else 1)
    lines = ["# Real labelled rooms on disk", "",
             "Written by `datasets/real/rebuild.py` from `datasets/real/sources.yaml`; the split is in",
             "`split.yaml`, each room's source, licence and classes in `datasets/REAL.md`.", "",
             "| layout | kind | split | rooms | scans | files |", "|---|---|---|---|---|---|"]
    for (layout, kind, split), c in sorted(rows.items()):
        lines.append(f"| {layout}/ | {kind} | {split} | {c['rooms']} | {c['scans']} | {c['files']} |")
    if report.skipped or report.refused:
        lines += ["", "Not on disk:"]
        lines += [f"- `{o}`: {why}" for o, why in sorted({**report.skipped, **report.refused}.items())]
    with atomic_path(out / "STATUS.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder, outside the repository (default {DEFAULT_OUT})")
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR,
                        help=f"folder of fetched repository snapshots (default {DEFAULT_MIRROR})")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                        help=f"folder holding the sources' shared copies (default {DEFAULT_SHARED})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        rooms = load_manifest(args.manifest)
        check_output_folder(args.out)
        report = rebuild(rooms, args.out, args.mirror, args.shared, progress=not args.no_progress)
    except PcsegError as exc:
        print(f"rebuild: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(report.written)} written, {len(report.present)} already present, "
          f"{len(report.skipped)} skipped, {len(report.refused)} refused -> {args.out}")
    for out, why in sorted(report.skipped.items()):
        print(f"skipped {out}: {why}")
    for out, why in sorted(report.refused.items()):
        print(f"refused {out}: {why}")
    return 1 if report.refused else 0


if __name__ == "__main__":
    sys.exit(main())
