"""Mixed training sources: shares, per-source validation, selection, pcseg eval per source."""

import json

import numpy as np
import pytest
import torch
import yaml

from pcseg.checkpoint import load_checkpoint
from pcseg.cli import main
from pcseg.config import apply_overrides, load_config
from pcseg.data.rooms import load_index, write_index, write_room
from pcseg.data.s3dis import prepare_s3dis
from pcseg.data.sources import MixedBlockDataset, load_sources, selection_source
from pcseg.data.splits import select_rooms
from pcseg.data.features import MISSING_RGB
from pcseg.data.synthetic import write_s3dis_layout
from pcseg.errors import PcsegError
from pcseg.training.loop import _training_set


@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    """Two caches of generated rooms with different areas: 'gen' (Area_1, Area_2) and 'other' (Area_7, Area_8)."""
    root = tmp_path_factory.mktemp("sources")
    write_s3dis_layout(root / "raw_a", {"Area_1": 1, "Area_2": 1}, seed=1, density=150, kind="office")
    write_s3dis_layout(root / "raw_b", {"Area_7": 1, "Area_8": 1}, seed=2, density=150, kind="office")
    prepare_s3dis(root / "raw_a", root / "gen", workers=1, progress=False)
    prepare_s3dis(root / "raw_b", root / "other", workers=1, progress=False)
    return root / "gen", root / "other"


def mixed_config(caches, **data):
    gen, other = caches
    config = load_config("pointnet_synthetic")
    config["data"].pop("root"), config["data"].pop("areas_train"), config["data"].pop("areas_val")
    config["data"]["sources"] = [
        {"name": "gen", "root": str(gen), "areas_train": ["Area_1"], "areas_val": ["Area_2"], "share": 0.5},
        {"name": "other", "root": str(other), "areas_train": ["Area_7"], "areas_val": ["Area_8"], "share": 0.5}]
    config["data"].update(data)
    return apply_overrides(config, ["data.num_points=128", "data.samples_per_epoch=16", "data.workers=0",
                                    "data.stride=1.0", "train.batch_size=8", "train.epochs=1",
                                    "train.checkpoint_every=2", "train.val_every=1"])


class _Constant(torch.utils.data.Dataset):
    def __init__(self, value):
        self.value, self.epoch = value, None

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __getitem__(self, i):
        return self.value, i


def test_mixture_follows_the_shares_and_is_reproducible():
    parts = [_Constant("a"), _Constant("b")]
    mixed = MixedBlockDataset(parts, [1, 3], length=4000, seed=5)
    mixed.set_epoch(2)
    assert parts[0].epoch == parts[1].epoch == 2
    drawn = [mixed[i] for i in range(len(mixed))]
    share_b = np.mean([v == "b" for v, _ in drawn])
    assert 0.72 < share_b < 0.78
    assert [i for _, i in drawn] == list(range(4000))              # item i of the chosen part
    again = MixedBlockDataset(parts, [1, 3], length=4000, seed=5)
    again.set_epoch(2)
    assert [again[i][0] for i in range(4000)] == [v for v, _ in drawn]
    again.set_epoch(3)
    assert [again[i][0] for i in range(4000)] != [v for v, _ in drawn]


def test_sources_are_checked(caches, tmp_path):
    gen, other = caches
    data = mixed_config(caches)["data"]
    sources = load_sources(data)
    assert [s.name for s in sources] == ["gen", "other"] and [len(s.train) for s in sources] == [1, 1]
    assert selection_source(data, sources).name == "gen"
    assert selection_source({**data, "select_on": "other"}, sources).name == "other"
    with pytest.raises(PcsegError, match="select_on 'nope'"):
        selection_source({**data, "select_on": "nope"}, sources)
    bad = [({"name": "gen", "root": str(gen), "areas_train": ["Area_1"], "sharee": 1}, "known keys"),
           ({"name": "gen", "root": str(gen), "areas_train": ["Area_1"], "share": -1}, "share must be"),
           ({"name": "gen", "root": str(gen), "areas_train": ["Area_9"]}, "unknown area Area_9"),
           ({"name": "gen", "root": str(gen), "areas_train": ["Area_1"], "colours": "no"}, "colours must be")]
    for spec, message in bad:
        with pytest.raises(PcsegError, match=message):
            load_sources({"sources": [spec]})
    with pytest.raises(PcsegError, match="names must be unique"):
        load_sources({"sources": [data["sources"][0], data["sources"][0]]})
    room = write_room(tmp_path / "two_classes", "Area_1", "r", np.zeros((4, 3)), np.zeros((4, 3)),
                      np.zeros(4), 2)
    write_index(tmp_path / "two_classes", ["a", "b"], [room])
    with pytest.raises(PcsegError, match="classes differ"):
        load_sources({"sources": [data["sources"][0], {"name": "x", "root": str(tmp_path / "two_classes"),
                                                       "areas_train": ["Area_1"]}]})


def test_a_source_without_colours_gets_grey_blocks_and_the_others_keep_theirs(caches):
    config = mixed_config(caches)
    config["augment"] = {"color_drop_p": 0.0}
    config["data"]["sources"][1]["colours"] = False
    sources = load_sources(config["data"])
    assert [s.colours for s in sources] == [True, False]
    mixed = _training_set(config, sources, seed=0, colours=True)
    rgb_by_source = {0: [], 1: []}
    for i in range(len(mixed)):
        rgb_by_source[mixed.source_of(i)].append(mixed[i][0][:, 3:6])
    assert rgb_by_source[0] and rgb_by_source[1]
    assert all(bool((rgb == MISSING_RGB).all()) for rgb in rgb_by_source[1])
    assert all(float(rgb.std()) > 0.01 for rgb in rgb_by_source[0])     # generated rooms are coloured
    # data.colours: false turns every source grey, whatever the source says
    grey = _training_set(config, sources, seed=0, colours=False)
    assert all(bool((grey[i][0][:, 3:6] == MISSING_RGB).all()) for i in range(len(grey)))


def test_mixed_training_validates_each_source_and_selects_on_one(caches, tmp_path, capsys):
    config = mixed_config(caches, select_on="other")
    config_file = tmp_path / "mixed.yaml"
    config_file.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "validation gen (Area_2)" in printed and "validation other (Area_8)" in printed
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert set(record["val_sources"]) == {"gen", "other"}
    assert record["val"] == record["val_sources"]["other"]          # select_on picks the scored one
    assert load_checkpoint(out / "best.pt")["metrics"]["val"]["mIoU"] == record["val_sources"]["other"]["mIoU"]

    # pcseg eval: by default every validation source of the checkpoint, each reported on its own
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--out", str(tmp_path / "m.json")]) == 0
    printed = capsys.readouterr().out
    assert "evaluation gen: Area_2" in printed and "evaluation other: Area_8" in printed
    result = json.loads((tmp_path / "m.json").read_text())
    assert set(result) == {"gen", "other"}
    assert result["other"]["mIoU"] == pytest.approx(record["val_sources"]["other"]["mIoU"])
    # a cache with its own areas, another with the checkpoint's validation areas for it
    gen, other = caches
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--data", f"{gen}:Area_1,Area_2", str(other),
                 "--out", str(tmp_path / "m2.json")]) == 0
    result = json.loads((tmp_path / "m2.json").read_text())
    assert "Area_1, Area_2" in result["gen"]["split"] and "Area_8" in result["other"]["split"]
    # each class's support: its labelled points and the rooms holding them, as the cache's index counts them
    counts = np.array([room["class_counts"] for room in select_rooms(load_index(gen)["rooms"], ["Area_1", "Area_2"])])
    assert result["gen"]["support"] == counts.sum(axis=0).tolist()
    assert result["gen"]["rooms_with_class"] == (counts > 0).sum(axis=0).tolist()
    assert sum(result["gen"]["support"]) == result["gen"]["points"]
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--data", str(tmp_path)]) == 2
    assert "no areas to evaluate" in capsys.readouterr().err
