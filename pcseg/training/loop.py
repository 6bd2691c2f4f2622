"""``train(config, out_dir)``: the training loop behind ``pcseg train``.

Deterministic given ``train.seed``: the order of samples in epoch e is a permutation drawn
from (seed, e) and every sample is drawn from (seed, e, index), so a run killed at any
point and resumed from ``last.pt`` (written every ``train.checkpoint_every`` steps and at
each epoch end, with optimiser, scheduler and RNG states) continues exactly as an
uninterrupted run would. With ``train.ema_decay`` (0 < d < 1) the loop also keeps an
exponential moving average of the weights and batch-norm statistics, updated after every
step (``torch.optim.swa_utils.AveragedModel``): validation scores it and the checkpoints'
``model`` holds it, while the raw weights needed to resume go in ``train_model``. Under
``torchrun`` the permutation is split between processes (DistributedDataParallel; gloo on
CPUs, NCCL on GPUs); rank 0 validates and writes. The data may be several prepared caches
mixed by share (``data.sources``, see :mod:`pcseg.data.sources`): each is validated and
reported separately, and ``data.select_on`` names the one whose mIoU picks ``best.pt``.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..bundled import resolve_model
from ..checkpoint import float_state, load_checkpoint, save_checkpoint
from ..config import DATA_DEFAULTS
from ..data.augment import AugmentConfig
from ..data.features import FEATURE_SETS, check_feature_set
from ..data.sources import MixedBlockDataset, load_sources, selection_source
from ..data.training_set import BlockTrainingDataset, class_weights
from ..errors import PcsegError
from ..losses import WeightedSum
from ..metrics import finite_json
from ..models import build
from ..ranks import start as start_ranks
from .evaluate import evaluate_rooms, format_table
from .plots import plot_confusion, plot_curves
from .run_dir import RunDir


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _init_weights(model: torch.nn.Module, source: str, classes: list[str], data_info: dict,
                  warn: bool = True) -> None:
    """Load the weights of checkpoint ``source`` (a path, run folder or bundled model name).

    The checkpoint must hold the same network (``model_config``) for the same classes;
    fine-tuning starts from it with a fresh optimiser and schedule. A feature set or colour use
    other than the checkpoint's is allowed (the weights fit) but, with ``warn``, said in one line.
    """
    path = resolve_model(source)
    ckpt = load_checkpoint(path)
    if ckpt["class_names"] != classes:
        raise PcsegError(f"train.init {path}: its classes {ckpt['class_names']} differ from the data's {classes}")
    if ckpt["model_config"] != model.config:
        raise PcsegError(f"train.init {path}: its network {ckpt['model_config']} differs from the config's "
                         f"{model.config}")
    theirs = {k: ckpt.get("data", {}).get(k) for k in ("feature_set", "colours")}
    ours = {k: data_info[k] for k in theirs}
    if theirs != ours and warn:
        print(f"pcseg: warning: train.init {path} was trained with feature_set {theirs['feature_set']}, colours "
              f"{theirs['colours']}; this config trains with feature_set {ours['feature_set']}, colours "
              f"{ours['colours']} (set data.feature_set / data.colours to keep the starting model's)",
              file=sys.stderr)
    model.load_state_dict(float_state(ckpt))


def _weight_average(model: torch.nn.Module, decay) -> AveragedModel | None:
    """The moving average of ``model`` that ``train.ema_decay`` asks for (None for 0 or absent)."""
    if not decay:
        return None
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay < 1:
        raise PcsegError(f"train.ema_decay must be a number in [0, 1), got {decay!r}")
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)


def _data_flag(data: dict, key: str) -> bool:
    """A true/false ``data`` setting (default true): ``colours`` false trains (and makes inference
    run) without reading colours; ``refine`` false validates, and makes inference run, without
    the flat-patch voting of :mod:`pcseg.refine`."""
    value = data.get(key, DATA_DEFAULTS[key])
    if not isinstance(value, bool):
        raise PcsegError(f"data.{key} must be true or false, got {value!r}")
    return value


def _training_set(config: dict, sources, seed: int, colours: bool):
    """The random training blocks of ``sources`` (a mixture by share when several); a source
    reads its colours only when ``colours`` (``data.colours``) and its own ``colours`` allow."""
    d = config["data"]
    balanced_share = d.get("balance_classes", False)
    if not isinstance(balanced_share, (bool, int, float)) or not 0 <= balanced_share <= 1:
        raise PcsegError(f"data.balance_classes must be true, false or a share in [0, 1], got {balanced_share!r}")
    used = [s for s in sources if s.share > 0]
    parts = [BlockTrainingDataset(s.root, s.train, d["num_points"], d["block_size"], d["feature_set"],
                                  AugmentConfig(**config.get("augment", {})), d.get("samples_per_epoch"),
                                  d.get("sampling", "random"), seed, float(balanced_share), colours and s.colours)
             for s in used]
    if len(parts) == 1:
        return parts[0]
    length = d.get("samples_per_epoch") or sum(len(p) for p in parts)
    return MixedBlockDataset(parts, [s.share for s in used], length, seed)


def _validate(model, sources, selected, data_info: dict, classes, device, batch: int, epoch: int, run,
              progress: bool = True) -> dict:
    """Scores every validation room of each source; returns the record's ``val`` entries."""
    record = {}
    for source in (s for s in sources if s.val):
        val = evaluate_rooms(model, source.root, source.val, data_info, len(classes), device, batch_size=batch,
                             progress=progress, desc=f"validation {source.name}")
        summary = {k: val[k] for k in ("OA", "mAcc", "mIoU", "fwIoU", "IoU", "AP")}
        record.setdefault("val_sources", {})[source.name] = summary
        print(format_table(val, classes, f"validation {source.name} ({', '.join(source.areas_val)}), "
                                         f"epoch {epoch}"))
        if source is selected:
            record["val"] = summary
            plot_confusion(val["confusion"], classes, run.path / "confusion.png",
                           f"validation {source.name}, epoch {epoch}")
    if len(sources) == 1:
        record.pop("val_sources", None)
    return record


def _resolved_config(config: dict, data_info: dict) -> dict:
    """``config`` with every data setting spelt out (defaults included), as the run uses it."""
    data = {**DATA_DEFAULTS, **config["data"], "colours": data_info["colours"], "refine": data_info["refine"]}
    return {**config, "data": data}


def _start_summary(config: dict, sources, model, device, world: int) -> str:
    """Lines saying what a run trains: model, features, initial weights, data per source, epochs."""
    d, t = config["data"], config["train"]
    lines = [f"training {config['model']['name']} ({sum(p.numel() for p in model.parameters()):,} parameters) "
             f"on {device}{f' x {world} processes' if world > 1 else ''}: feature_set {d['feature_set']}, "
             f"colours {_data_flag(d, 'colours')}, {t['epochs']} epochs, initial weights {t.get('init') or 'random'}"]
    for source in sources:
        share = f" (share {source.share:g})" if len(sources) > 1 else ""
        areas = (f"({', '.join(source.areas_val)})" if source.areas_val
                 else "(none: best.pt is the lowest training loss)")
        lines.append(f"  data {source.name} ({source.root}): {len(source.train)} training rooms{share}, "
                     f"{len(source.val)} validation rooms {areas}")
    return "\n".join(lines)


def train(config: dict, out_dir, resume: bool = False, progress: bool = True) -> dict:
    """Train as ``config`` says into ``out_dir``; returns the last epoch's record."""
    rank, world = start_ranks()
    run = RunDir(out_dir, resume) if rank == 0 else None
    if world > 1:
        dist.barrier()
    d, t = config["data"], config["train"]
    check_feature_set(d["feature_set"])
    sources = load_sources(d)
    selected = selection_source(d, sources)
    classes = sources[0].classes
    seed = int(t["seed"])
    torch.manual_seed(seed)
    device = _device(t.get("device", "auto"))
    data_info = {**{k: d[k] for k in ("feature_set", "num_points", "block_size", "stride")},
                 "colours": _data_flag(d, "colours"), "refine": _data_flag(d, "refine")}
    dataset = _training_set(config, sources, seed, data_info["colours"])
    counts = np.sum([r["class_counts"] for s in sources if s.share > 0 for r in s.train], axis=0)
    model = build(config["model"]["name"], len(classes), FEATURE_SETS[d["feature_set"]],
                  **config["model"].get("options", {})).to(device)
    loss_fn = WeightedSum(config["loss"], class_weights(counts)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t["lr"], weight_decay=t.get("weight_decay", 0.0))
    batch = int(t["batch_size"])
    steps = len(dataset) // (batch * world)
    if steps == 0:
        raise PcsegError(f"samples_per_epoch ({len(dataset)}) is smaller than one batch of every process")
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=t["epochs"] * steps)
    state = {"epoch": 0, "step": 0, "loss_sum": 0.0, "records": [], "best": float("-inf")}
    average = _weight_average(model, t.get("ema_decay"))
    if resume:
        ckpt = load_checkpoint(RunDir(out_dir, True).last)
        model.load_state_dict(ckpt["train_model"] if average else ckpt["model"])
        if average:
            average.module.load_state_dict(ckpt["model"])
            average.n_averaged.fill_(ckpt["average_count"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        state = ckpt["state"]
        _set_rng_state(ckpt["rng"])
    else:
        if t.get("init"):
            _init_weights(model, t["init"], classes, data_info, warn=rank == 0)
        if rank == 0:
            run.write_config(_resolved_config(config, data_info))
    if rank == 0:
        print(_start_summary(config, sources, model, device, world))
        if resume:
            print(f"resumed from epoch {state['epoch']}"
                  + (f", step {state['step']} of epoch {state['epoch'] + 1}" if state["step"] else "")
                  + f" ({run.last})")
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if t.get("compile"):
        net = torch.compile(net)
    amp = torch.autocast("cuda", dtype=torch.float16) if t.get("amp") and device.type == "cuda" else nullcontext()
    scaler = torch.amp.GradScaler("cuda", enabled=bool(t.get("amp")) and device.type == "cuda")

    scored = average.module if average else model  # the network validation scores and checkpoints hold

    def payload(**extra):
        weights = {"model": scored.state_dict()}
        if average:
            weights.update(train_model=model.state_dict(), average_count=int(average.n_averaged))
        return {**weights, "model_config": model.config, "data": data_info,
                "class_names": classes, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": _rng_state(), "config": config,
                "state": dict(state), **extra}

    record = state["records"][-1] if state["records"] else {}
    for epoch in range(state["epoch"], t["epochs"]):
        dataset.set_epoch(epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(dataset))[: steps * batch * world]
        batches = order.reshape(steps, world, batch)[:, rank].tolist()
        loader = DataLoader(dataset, batch_sampler=batches[state["step"]:], num_workers=d.get("workers", 0),
                            generator=torch.Generator().manual_seed(seed + epoch))
        net.train()
        bar = tqdm(total=steps, initial=state["step"], desc=f"epoch {epoch + 1}/{t['epochs']}",
                   disable=not progress or rank != 0, unit="step")
        tic, steps_here = time.perf_counter(), 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with amp:
                logits, aux = net(x)
                loss = loss_fn(logits.float(), y) + aux
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if average:
                average.update_parameters(model)
            state["step"] += 1
            state["loss_sum"] += loss.item()
            steps_here += 1
            rate = x.shape[0] * x.shape[1] * world * steps_here / (time.perf_counter() - tic)
            bar.set_postfix(loss=f"{state['loss_sum'] / state['step']:.3f}",
                            lr=f"{scheduler.get_last_lr()[0]:.2e}", pts_s=f"{rate:,.0f}")
            bar.update()
            if rank == 0 and state["step"] % t.get("checkpoint_every", 50) == 0 and state["step"] < steps:
                save_checkpoint(run.last, payload())
        bar.close()
        record = {"epoch": epoch + 1, "train_loss": state["loss_sum"] / steps, "lr": scheduler.get_last_lr()[0]}
        if rank == 0:
            if selected and (epoch + 1) % t.get("val_every", 1) == 0:
                record.update(_validate(scored, sources, selected, data_info, classes, device, batch,
                                        epoch + 1, run, progress))
            print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}"
                  + (f", validation mIoU {100 * record['val']['mIoU']:.1f}" if "val" in record else ""))
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, records=state["records"] + [record])
        if rank == 0:
            score = record["val"]["mIoU"] if "val" in record else -record["train_loss"]
            is_best = score > state["best"]
            if is_best:
                state["best"] = score
            save_checkpoint(run.last, payload(metrics=record))
            if is_best:
                save_checkpoint(run.best, payload(metrics=record))
            run.write_metrics(finite_json(state["records"]))
            plot_curves(state["records"], run.path / "curves.png")
        if world > 1:
            dist.barrier()
    return record
