"""``pcseg eval --checkpoint CKPT [--data CACHE[:AREA,AREA...] ...] [--areas A ...] [--out JSON]``:
scores every point of the chosen rooms with the segmenter's block voting, each cache (source)
reported separately.

Without ``--data`` the checkpoint's own validation sources are scored (every cache of its
training config with validation areas). A ``--data`` cache without ``:AREAS`` is scored on
``--areas``, or else on the validation areas the checkpoint's config gave that cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..refine import add_refine_arguments, model_refines


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a checkpoint on every point of prepared rooms")
    parser.add_argument("--checkpoint", required=True, help="a .pt checkpoint (e.g. RUN_DIR/best.pt)")
    parser.add_argument("--data", nargs="+", default=None, metavar="CACHE[:AREAS]",
                        help="prepared cache folder(s), each optionally with its areas after a colon "
                             "(default: the checkpoint's validation sources)")
    parser.add_argument("--areas", nargs="+", default=None,
                        help="areas to score in caches given without their own (default: the "
                             "checkpoint's validation areas of that cache)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: auto)")
    parser.add_argument("--batch-size", type=int, default=16, help="blocks per forward pass")
    parser.add_argument("--votes", type=int, default=1,
                        help="average this many turns of every block (as pcseg segment --votes; default 1)")
    add_refine_arguments(parser)
    parser.add_argument("--out", default=None, help="write the metrics as JSON here")
    parser.set_defaults(func=run)


def evaluation_targets(data_args, areas, meta: dict) -> list[tuple[str, str, list[str]]]:
    """(name, cache root, areas) to score, from ``--data`` / ``--areas`` and the checkpoint."""
    from ..data.sources import source_specs
    from ..errors import PcsegError

    data = meta.get("config", {}).get("data", {})
    known = source_specs(data) if data else []
    if not data_args:
        targets = [(s["name"], s["root"], list(areas or s.get("areas_val") or [])) for s in known]
        targets = [t for t in targets if t[2]]
        if not targets:
            raise PcsegError("the checkpoint names no validation areas: give --data (and --areas)")
        return targets
    targets = []
    for item in data_args:
        root, sep, listed = item.partition(":")
        chosen = [a for a in listed.split(",") if a] if sep else list(areas or [])
        if not chosen:
            same = [s for s in known if Path(str(s["root"])).resolve() == Path(root).resolve()]
            chosen = list(same[0].get("areas_val") or []) if same else []
        if not chosen:
            raise PcsegError(f"{root}: no areas to evaluate: give --areas or {root}:AREA,AREA")
        targets.append((Path(root).name or root, root, chosen))
    return targets


def _evaluate(args) -> int:
    import torch

    from ..checkpoint import load_model
    from ..data.rooms import load_index
    from ..data.splits import select_rooms
    from ..errors import PcsegError
    from ..metrics import finite_json
    from ..fileutil import atomic_path
    from ..training.evaluate import evaluate_rooms, format_table

    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        ("cpu" if args.device == "auto" else args.device)
    if args.votes < 1:
        raise PcsegError(f"--votes must be at least 1, got {args.votes}")
    model, meta = load_model(args.checkpoint, device)
    plan = []
    for name, root, areas in evaluation_targets(args.data, args.areas, meta):
        index = load_index(root)
        if index["classes"] != list(meta["class_names"]):
            raise PcsegError(f"{root}: its classes differ from the checkpoint's")
        rooms = select_rooms(index["rooms"], areas, f"{root}: areas")
        if not rooms:
            raise PcsegError(f"{root}: no rooms in areas {', '.join(areas)}")
        plan.append((name, root, areas, rooms))
    refine = model_refines(meta["data"], args.refine)
    results = {}
    for name, root, areas, rooms in plan:
        result = evaluate_rooms(model, root, rooms, meta["data"], len(meta["class_names"]), device,
                                batch_size=args.batch_size, votes=args.votes, refine=refine, progress=True)
        split = (f"evaluation {name}: {', '.join(areas)} ({len(rooms)} rooms, every point, "
                 f"{args.votes} vote{'s' if args.votes > 1 else ''}{', flat patches voted' if refine else ''})")
        print(format_table(result, meta["class_names"], split))
        results[name] = {"split": split, "root": str(root), **result}
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(finite_json(results), indent=1, allow_nan=False))
    return 0


def run(args) -> int:
    """Evaluate, with ``--out`` claimed (:mod:`pcseg.claims`) for the whole run."""
    from ..claims import claimed

    with claimed([args.out] if args.out else []):
        return _evaluate(args)
