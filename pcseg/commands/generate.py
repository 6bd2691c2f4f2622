"""``pcseg generate``: synthetic S3DIS-style rooms, as a raw layout or one PLY."""

from __future__ import annotations

from ..errors import PcsegError
from .prepare import DEFAULT_WORKERS, workers_count


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate synthetic S3DIS-style rooms (raw layout or one PLY)")
    parser.add_argument("dst", help="output: a folder for the raw layout, or a .ply file with --ply")
    parser.add_argument("--areas", type=int, default=1, help="number of areas (default 1)")
    parser.add_argument("--rooms-per-area", type=int, default=3, help="rooms per area (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--density", type=float, default=2500.0,
                        help="surface points per m^2 before occlusion (default 2500)")
    parser.add_argument("--kind", default=None, help="room kind (default: random per room)")
    parser.add_argument("--sensor", default="lidar",
                        help="what captures the rooms: lidar (S3DIS-like stations) or rgbd (ScanNet-like "
                             "walk-through: at most 50,000 points a room, ceilings often missing, holes) "
                             "(default lidar)")
    parser.add_argument("--ply", action="store_true",
                        help="write one room to DST as a PLY with a 'label' property")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing PLY")
    parser.add_argument("--workers", type=workers_count, default=DEFAULT_WORKERS,
                        help="rooms generated in parallel (default: up to 4 processes)")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..data.synthetic import ROOM_KINDS, SENSORS, generate_room, write_s3dis_layout
    from ..io import write_ply

    if args.kind is not None and args.kind not in ROOM_KINDS:
        raise PcsegError(f"--kind must be one of {', '.join(ROOM_KINDS)}")
    if args.sensor not in SENSORS:
        raise PcsegError(f"--sensor must be one of {', '.join(SENSORS)}, got {args.sensor!r}")
    if args.ply:
        room = generate_room(args.seed, kind=args.kind, density=args.density, sensor=args.sensor)
        path = write_ply(args.dst, room.xyz, room.rgb, room.labels, overwrite=args.overwrite)
        print(f"wrote {room.name}: {len(room.xyz):,} points to {path}")
        return 0
    folders = write_s3dis_layout(args.dst, args.areas, seed=args.seed, rooms_per_area=args.rooms_per_area,
                                 density=args.density, kind=args.kind, sensor=args.sensor, workers=args.workers,
                                 progress=True)
    print(f"{len(folders)} rooms in the raw S3DIS layout under {args.dst} (rooms already there are kept)")
    return 0
