"""``pcseg eval --checkpoint CKPT --data CACHE [--areas Area_5 ...] [--out JSON]``: scores every
point of the chosen rooms with the segmenter's block voting."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on every point of prepared rooms")
    parser.add_argument("--checkpoint", required=True, help="a .pt checkpoint (e.g. RUN_DIR/best.pt)")
    parser.add_argument("--data", required=True, help="prepared cache folder")
    parser.add_argument("--areas", nargs="+", default=None,
                        help="areas to score (default: the checkpoint's validation areas)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=16, help="blocks per forward pass")
    parser.add_argument("--votes", type=int, default=1,
                        help="average this many turns of every block (as pcseg segment --votes; default 1)")
    parser.add_argument("--out", default=None, help="write the metrics as JSON here")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..checkpoint import load_model
    from ..data.rooms import load_index
    from ..data.splits import select_rooms
    from ..errors import PcsegError
    from ..fileutil import atomic_path
    from ..training.evaluate import evaluate_rooms, format_table

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    if args.votes < 1:
        raise PcsegError(f"--votes must be at least 1, got {args.votes}")
    model, meta = load_model(args.checkpoint, device)
    index = load_index(args.data)
    if index["classes"] != list(meta["class_names"]):
        raise PcsegError(f"{args.data}: its classes differ from the checkpoint's")
    areas = args.areas or meta.get("config", {}).get("data", {}).get("areas_val")
    if not areas:
        raise PcsegError("no areas to evaluate: give --areas")
    rooms = select_rooms(index["rooms"], areas)
    if not rooms:
        raise PcsegError(f"{args.data}: no rooms in areas {', '.join(areas)}")
    result = evaluate_rooms(model, args.data, rooms, meta["data"], len(meta["class_names"]), device,
                            batch_size=args.batch_size, votes=args.votes, progress=True)
    split = f"evaluation {', '.join(areas)} ({len(rooms)} rooms, every point, {args.votes} vote{'s' if args.votes > 1 else ''})"
    print(format_table(result, meta["class_names"], split))
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps({"split": split, **result}, indent=1))
    return 0
