"""Staged configs: stages in a row, each from the previous stage's export; resume skips done stages."""

import pytest
import torch
import yaml

from pcseg.checkpoint import load_checkpoint, save_checkpoint
from pcseg.cli import main
from pcseg.data.s3dis import prepare_s3dis
from pcseg.data.synthetic import write_s3dis_layout
from pcseg.errors import PcsegError
from pcseg.training.stages import stage_configs, train_stages

TINY = ["data.num_points=128", "data.samples_per_epoch=16", "data.workers=0", "data.stride=1.0",
        "train.batch_size=8", "train.epochs=1", "train.val_every=5", "data.areas_val=[]"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    write_s3dis_layout(root / "raw", {"Area_1": 1}, seed=3, density=150, kind="office")
    prepare_s3dis(root / "raw", root / "cache", workers=1, progress=False)
    return root / "cache"


def staged(cache, tmp_path):
    path = tmp_path / "staged.yaml"
    path.write_text(yaml.safe_dump({"stages": [
        {"name": "first", "config": "pointnet_synthetic", "set": [f"data.root={cache}", "data.areas_train=[Area_1]"]},
        {"name": "second", "config": "pointnet_synthetic",
         "set": [f"data.root={cache}", "data.areas_train=[Area_1]", "train.seed=5", "train.lr=0.0"]}]}))
    return path


def test_stages_train_in_a_row_each_from_the_previous_export(cache, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--config", str(staged(cache, tmp_path)), "--out", str(out)] + \
        [a for o in TINY for a in ("--set", o)]
    assert main(argv) == 0
    assert "all stages done" in capsys.readouterr().out
    first, second = load_checkpoint(out / "first" / "export.pt"), load_checkpoint(out / "second" / "best.pt")
    assert second["config"]["train"]["init"] == str(out / "first" / "export.pt")
    assert second["config"]["train"]["seed"] == 5 and second["config"]["data"]["num_points"] == 128
    # lr 0: the second stage keeps the weights it started from (the first stage's float16 export)
    for key, value in first["model"].items():
        if value.is_floating_point() and "running" not in key and "num_batches" not in key:
            torch.testing.assert_close(second["model"][key], value.float(), msg=key)
    assert main(argv) == 2                                    # a finished run is not overwritten
    assert "not empty" in capsys.readouterr().err


def test_resume_skips_finished_stages_and_resumes_the_interrupted_one(cache, tmp_path):
    calls = []

    def fake_train(config, out_dir, resume=False):
        calls.append((out_dir.name, resume, config["train"]["init"]))
        if out_dir.name == "second" and not resume:
            out_dir.mkdir(parents=True)
            (out_dir / "last.pt").write_bytes(b"")
            raise KeyboardInterrupt                           # killed in the middle of stage two
        payload = {"model": {"w": torch.ones(2)}, "model_config": {}, "data": {}, "class_names": []}
        save_checkpoint(out_dir / "best.pt", payload)
        save_checkpoint(out_dir / "last.pt", payload)

    config = yaml.safe_load(staged(cache, tmp_path).read_text())
    with pytest.raises(KeyboardInterrupt):
        train_stages(config, [], tmp_path / "run", train_fn=fake_train)
    last = train_stages({}, [], tmp_path / "run", resume=True, train_fn=fake_train)
    export = str(tmp_path / "run" / "first" / "export.pt")
    assert calls == [("first", False, None), ("second", False, export), ("second", True, export)]
    assert last == tmp_path / "run" / "second" and (last / "export.pt").is_file()


def test_bad_stage_lists_are_one_line_errors(tmp_path):
    for stages, message in [([], "non-empty list"), ([{"config": "pointnet_synthetic"}], "expected"),
                            ([{"name": "a", "config": "pointnet_synthetic"}] * 2, "unique"),
                            ([{"name": "a", "config": "pointnet_synthetic", "set": "train.lr=1"}], "list of key=value"),
                            ([{"name": "a", "config": "pointnet_synthetic", "set": ["train.nope=1"]}], "unknown key")]:
        with pytest.raises(PcsegError, match=message):
            stage_configs({"stages": stages}, [])
    with pytest.raises(PcsegError, match="nothing to resume"):
        train_stages({}, [], tmp_path / "none", resume=True)
