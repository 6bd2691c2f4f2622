"""Model throughput on the CPU: forward (eval, no grad) and forward+backward (training mode)
points/s at 8 x 4096 points with 9 input channels, at 1 and 2 threads. With ``--device cuda``:
training points/s on the GPU (forward, cross-entropy, backward, AdamW step) of both models in
float32, with AMP (float16 autocast + GradScaler, as ``train.amp``), with ``torch.compile`` (as
``train.compile``) and with both; the first step's time (compilation included) beside each.

PointNet is compared with a plain reference of the same network written the usual way
(Conv1d on channels-first tensors, the 1088-wide concatenation built, batch norm as its
own layer at inference; ``ConvPointNetReference`` in tests/test_models.py, which checks
that both compute the same function). A-CNN's time is split by torch.profiler between
the compiled ops, normal estimation, the MLPs / ring convolutions, and the gathers and
ordering around them.

    .venv/bin/python bench/bench_models.py [--batch 8] [--points 4096] [--repeats 3] [--threads 1 2]
    python3 bench/bench_models.py --device cuda [--json rates.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pcseg.models import build

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_models import ConvPointNetReference  # noqa: E402

#: GPU training variants: (name, torch.compile, AMP).
CUDA_VARIANTS = (("float32", False, False), ("amp", False, True), ("compile", True, False),
                 ("compile + amp", True, True))

#: A-CNN's time categories: profiler event names (aten ops and their autograd nodes)
#: containing one of the fragments; first match wins, the rest is "elementwise and other".
CATEGORIES = (
    ("compiled ops (fps, knn, ring_knn)", ("pcseg::",)),
    ("normals (covariance, eigh)", ("eigh", "bmm")),
    ("MLPs, ring convolutions (matmul, BN, ReLU)", ("addmm", "aten::mm", "batch_norm", "clamp_min",
                                                    "threshold_backward")),
    ("gathers, ordering, concat, pooling", ("gather", "scatter", "index", "sort", "atan2", "aten::cat",
                                            "roll", "amax", "aten::eq")),
)


def best_time(fn, repeats: int) -> float:
    """Fastest of ``repeats`` calls after one warm-up call, in seconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def forward_fn(model, x):
    def run():
        model.eval()
        with torch.no_grad():
            model(x)
    return run


def forward_backward_fn(model, x):
    def run():
        model.train()
        model.zero_grad(set_to_none=True)
        logits, aux = model(x)
        (logits.square().mean() + aux).backward()
    return run


def time_split(model, x) -> dict[str, tuple[float, float]]:
    """Share of self CPU time per category, (forward, forward+backward)."""
    from torch.profiler import ProfilerActivity, profile

    shares = []
    for fn in (forward_fn(model, x), forward_backward_fn(model, x)):
        fn()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fn()
        totals = {name: 0.0 for name, _ in CATEGORIES}
        totals["elementwise and other"] = 0.0
        for event in prof.key_averages():
            key = event.key
            name = next((n for n, parts in CATEGORIES if any(p in key for p in parts)), "elementwise and other")
            totals[name] += event.self_cpu_time_total
        grand = sum(totals.values())
        shares.append({k: v / grand for k, v in totals.items()})
    return {k: (shares[0][k], shares[1][k]) for k in shares[0]}


def training_step_fn(net, params, x, y, amp: bool):
    """One training step of net on (x, y) on CUDA: forward (float16 autocast when amp),
    cross-entropy, backward through a GradScaler, AdamW step."""
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    def run():
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            logits, aux = net(x)
            loss = F.cross_entropy(logits.float().transpose(1, 2), y) + aux
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return run


def cuda_training_rates(x: torch.Tensor, repeats: int, json_path: str | None = None) -> list[dict]:
    """Training points/s of both models in every CUDA_VARIANTS on x (B, N, 9), already on CUDA;
    the uncompiled variants first (compiling takes longest). The rows so far are rewritten to
    json_path after each one, so a run stopped early keeps them."""
    from cuda_cases import cuda_timed

    y = torch.randint(0, 13, x.shape[:2], device=x.device)
    rows = []
    print(f"{'model':<10}{'variant':<16}{'train points/s':>16}{'first step s':>14}")
    for variant, compiled, amp in CUDA_VARIANTS:
        for name in ("pointnet", "acnn"):
            torch.manual_seed(0)
            model = build(name, 13, x.shape[-1]).to(x.device).train()
            step = training_step_fn(torch.compile(model) if compiled else model, model.parameters(), x, y, amp)
            start = time.perf_counter()
            step()
            torch.cuda.synchronize()
            first = time.perf_counter() - start
            rate = x.shape[0] * x.shape[1] / (cuda_timed(step, repeats) / 1e3)
            rows.append({"model": name, "variant": variant, "train_points_per_s": rate, "first_step_s": first})
            print(f"{name:<10}{variant:<16}{rate:>16,.0f}{first:>14.1f}", flush=True)
            if json_path:
                with open(json_path, "w") as f:
                    json.dump({"device": "cuda", "batch": x.shape[0], "points": x.shape[1], "rows": rows}, f, indent=1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts")
    parser.add_argument("--json", help="--device cuda: also write the rates to this JSON file")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.batch, args.points, 9)
    x[..., :2] -= 0.5                                # a 1 m block, block-centred xyz
    x[..., 2] *= 3.0
    n = args.batch * args.points
    if args.device == "cuda":
        if not torch.cuda.is_available():
            print("bench_models: error: --device cuda needs a CUDA device (torch.cuda.is_available() is False)",
                  file=sys.stderr)
            raise SystemExit(2)
        print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; batch {args.batch} x {args.points} "
              f"points, 9 channels; median of {args.repeats} steps")
        cuda_training_rates(x.cuda(), args.repeats, args.json)
        return
    models = {
        "pointnet (pcseg)": build("pointnet", 13, 9),
        "pointnet (Conv1d reference)": ConvPointNetReference(13, 9),
        "acnn (pcseg)": build("acnn", 13, 9),
    }
    print(f"batch {args.batch} x {args.points} points, 9 channels; points/s, best of {args.repeats}")
    print(f"{'model':<30}{'threads':>8}{'forward':>12}{'fwd+bwd':>12}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        rates = {}
        for name, model in models.items():
            rates[name] = tuple(n / best_time(fn(model, x), args.repeats)
                                for fn in (forward_fn, forward_backward_fn))
            print(f"{name:<30}{threads:>8}{rates[name][0]:>12,.0f}{rates[name][1]:>12,.0f}", flush=True)
        ours, ref = rates["pointnet (pcseg)"], rates["pointnet (Conv1d reference)"]
        print(f"{'pointnet speed-up':<30}{threads:>8}{ours[0] / ref[0]:>11.2f}x{ours[1] / ref[1]:>11.2f}x")
    print(f"\nacnn: share of CPU time ({torch.get_num_threads()} threads)")
    print(f"{'category':<46}{'forward':>10}{'fwd+bwd':>10}")
    for name, (fwd, both) in time_split(models["acnn (pcseg)"], x).items():
        print(f"{name:<46}{fwd:>10.0%}{both:>10.0%}")


if __name__ == "__main__":
    main()
