"""Model throughput on the CPU: forward and forward+backward points/s at 8 x 4096 points.

PointNet is compared with a plain reference of the same architecture written the usual
way (Conv1d on channels-first tensors, as most PyTorch ports do); A-CNN's time is split
between the compiled ops and the rest (torch.profiler).

    .venv/bin/python bench/bench_models.py [--batch 8] [--points 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from pcseg.models import build


class ConvTNet(nn.Module):
    def __init__(self, c_in, k):
        super().__init__()
        self.k = k
        self.convs = nn.Sequential(*[m for a, b in ((c_in, 64), (64, 128), (128, 1024))
                                     for m in (nn.Conv1d(a, b, 1), nn.BatchNorm1d(b), nn.ReLU())])
        self.fc = nn.Sequential(nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(),
                                nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, k * k))

    def forward(self, x):                      # x (B, C, N)
        return self.fc(self.convs(x).max(dim=2).values).view(-1, self.k, self.k) + torch.eye(self.k)


def conv_stack(widths):
    return nn.Sequential(*[m for a, b in zip(widths[:-1], widths[1:])
                           for m in (nn.Conv1d(a, b, 1), nn.BatchNorm1d(b), nn.ReLU())])


class ConvPointNetReference(nn.Module):
    """The same PointNet segmentation network in the common Conv1d / channels-first style."""

    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.tnet1, self.tnet2 = ConvTNet(3, 3), ConvTNet(64, 64)
        self.mlp1 = conv_stack([in_channels, 64, 64])
        self.mlp2 = conv_stack([64, 64, 128, 1024])
        self.head = conv_stack([1088, 512, 256, 128])
        self.drop = nn.Dropout(0.3)
        self.cls = nn.Conv1d(128, num_classes, 1)

    def forward(self, x):                      # x (B, N, C)
        x = x.transpose(1, 2)
        xyz = torch.bmm(self.tnet1(x[:, :3]).transpose(1, 2), x[:, :3])
        x = self.mlp1(torch.cat([xyz, x[:, 3:]], 1))
        t = self.tnet2(x)
        x = torch.bmm(t.transpose(1, 2), x)
        g = self.mlp2(x).max(dim=2, keepdim=True).values.expand(-1, -1, x.shape[2])
        out = self.cls(self.drop(self.head(torch.cat([x, g], 1)))).transpose(1, 2)
        reg = (torch.eye(64) - t @ t.transpose(1, 2)).square().sum((1, 2)).mean() * 0.001
        return out, reg


def timed(fn, repeats):
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def throughput(model, x, repeats):
    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        logits, aux = model(x)
        (logits.mean() + aux).backward()

    model.train()
    n = x.shape[0] * x.shape[1]
    return n / timed(forward, repeats), n / timed(forward_backward, repeats)


def ops_share(model, x):
    """Share of A-CNN's forward time spent in the pcseg ops (fps, knn, ring_knn)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    ops = sum(e.self_cpu_time_total for e in events if e.key.startswith("pcseg::"))
    eigh = sum(e.self_cpu_time_total for e in events if "eigh" in e.key)
    return ops / total, eigh / total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.points, 9) * 0.3
    print(f"batch {args.batch} x {args.points} points, 9 channels; points/s (best of {args.repeats})")
    print(f"{'model':<28}{'threads':>8}{'forward':>14}{'fwd+bwd':>14}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        rows = {
            "pointnet (pcseg)": build("pointnet", 13, 9),
            "pointnet (Conv1d reference)": ConvPointNetReference(13, 9),
            "acnn (pcseg)": build("acnn", 13, 9),
        }
        results = {}
        for name, model in rows.items():
            results[name] = throughput(model, x, args.repeats)
            fwd, fb = results[name]
            print(f"{name:<28}{threads:>8}{fwd:>14,.0f}{fb:>14,.0f}")
        ours, ref = results["pointnet (pcseg)"], results["pointnet (Conv1d reference)"]
        print(f"{'pointnet speed-up vs reference':<36}{ours[0] / ref[0]:>14.2f}x{ours[1] / ref[1]:>13.2f}x")
    share, eigh = ops_share(build("acnn", 13, 9), x)
    print(f"acnn forward (2 threads): {share:.0%} of the time in pcseg ops (fps, knn, ring_knn), "
          f"{eigh:.0%} in normal estimation's eigh, the rest in MLPs, convolutions and gathers")


if __name__ == "__main__":
    main()
