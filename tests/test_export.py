"""pcseg export: inference-only float16 checkpoints that predict like the original."""

import torch

from pcseg.checkpoint import HALF_MIN_ELEMENTS, load_checkpoint, load_model, save_checkpoint
from pcseg.cli import main
from pcseg.classes import S3DIS_CLASSES
from pcseg.models import build


def _training_checkpoint(path, name):
    torch.manual_seed(0)
    model = build(name, 13, 9)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters())
    logits, aux = model(torch.randn(2, 256, 9))  # batch-norm statistics and Adam moments
    (logits.square().mean() + aux).backward()
    optimizer.step()
    save_checkpoint(path, {"model": model.state_dict(), "model_config": model.config,
                           "data": {"feature_set": "xyzrgbn", "num_points": 256, "block_size": 1.0, "stride": 0.5},
                           "class_names": list(S3DIS_CLASSES), "optimizer": optimizer.state_dict(),
                           "config": {"train": {"epochs": 1}}, "metrics": {"epoch": 1}})
    return path


def test_export_drops_training_state_and_halves_weight_matrices(tmp_path, capsys):
    src = _training_checkpoint(tmp_path / "best.pt", "pointnet")
    dst = tmp_path / "small.pt"
    assert main(["export", str(src), str(dst)]) == 0
    assert "float16" in capsys.readouterr().out
    exported = load_checkpoint(dst)
    assert "optimizer" not in exported and exported["config"] == {"train": {"epochs": 1}}
    assert exported["metrics"] == {"epoch": 1}
    assert exported["data"]["colours"] is True  # written before data.colours: it reads colours
    for key, tensor in exported["model"].items():
        if tensor.is_floating_point():
            expected = torch.float16 if tensor.numel() >= HALF_MIN_ELEMENTS else torch.float32
            assert tensor.dtype == expected, key
    assert dst.stat().st_size < 0.2 * src.stat().st_size  # weights + 2 Adam moments in float32 before


def test_exported_model_predicts_like_the_original(tmp_path):
    for name in ("pointnet", "acnn"):
        src = _training_checkpoint(tmp_path / f"{name}.pt", name)
        dst = tmp_path / f"{name}_fp16.pt"
        assert main(["export", str(src), str(dst)]) == 0
        (full, _), (half, _) = load_model(src), load_model(dst)
        x = torch.rand(2, 256, 9)
        with torch.no_grad():
            p, q = torch.softmax(full(x)[0], -1), torch.softmax(half(x)[0], -1)
        assert (p - q).abs().max() < 0.02, name
        assert (p.argmax(-1) == q.argmax(-1)).float().mean() > 0.98, name


def test_export_sets_whether_the_model_runs_with_flat_patch_voting(tmp_path):
    from pcseg.segment import Segmenter

    src = _training_checkpoint(tmp_path / "best.pt", "pointnet")
    assert Segmenter.load(str(src), "cpu").refine  # says nothing: voted
    for flag, voted in (("--no-refine", False), ("--refine", True)):
        dst = tmp_path / f"{flag}.pt"
        assert main(["export", str(src), str(dst), flag]) == 0
        assert load_checkpoint(dst)["data"]["refine"] is voted
        assert Segmenter.load(str(dst), "cpu").refine is voted


def test_export_refuses_to_overwrite(tmp_path, capsys):
    src = _training_checkpoint(tmp_path / "best.pt", "pointnet")
    assert main(["export", str(src), str(src)]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    (tmp_path / "out.pt").write_bytes(b"x")
    assert main(["export", str(src), str(tmp_path / "out.pt")]) == 2
    assert main(["export", str(src), str(tmp_path / "out.txt")]) == 2
