"""pcseg train / eval as a new user meets them: misspelt areas, what a run says at its start and
on resume, standard JSON, every data setting in config.yaml, a starting model of other features."""

import json

import yaml
from test_train import _write, cache, tiny_config  # noqa: F401  (cache is a fixture)

from pcseg.cli import main
from pcseg.config import apply_overrides


def strict_json(text):
    """``json.loads`` that refuses NaN and Infinity, as standard JSON readers do."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_misspelt_area_is_a_one_line_error_before_work(cache, tmp_path, capsys):  # noqa: F811
    for key in ("areas_val", "areas_train"):
        config = apply_overrides(tiny_config(cache), [f"data.{key}=[area_5]"])
        out = tmp_path / f"run_{key}"
        assert main(["train", "--config", _write(tmp_path / f"{key}.yaml", config), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{key}: unknown area area_5" in err[0] and "Area_1, Area_5" in err[0]
        assert not (out / "last.pt").exists()


def test_run_summary_resume_line_finite_json_and_full_config(cache, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    config = tiny_config(cache, epochs=1)
    assert main(["train", "--config", _write(tmp_path / "a.yaml", config), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "training pointnet" in captured.out and "initial weights random" in captured.out
    assert f"data {cache.name} ({cache}): 2 training rooms, 1 validation rooms (Area_5)" in captured.out
    assert f"validation {cache.name}" in captured.err  # the validation progress bar
    records = [strict_json(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert None in records[0]["val"]["IoU"]  # classes absent from the generated rooms: null, not NaN
    saved = yaml.safe_load((out / "config.yaml").read_text())["data"]
    assert saved["colours"] is True and saved["balance_classes"] is False and saved["sampling"] == "random"
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--data", str(cache), "--no-refine",
                 "--out", str(tmp_path / "m.json")]) == 0
    assert None in strict_json((tmp_path / "m.json").read_text())[cache.name]["IoU"]
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--data", f"{cache}:area_5"]) == 2
    assert "unknown area area_5" in capsys.readouterr().err
    longer = apply_overrides(config, ["train.epochs=2"])
    (out / "config.yaml").write_text(yaml.safe_dump(longer))
    assert main(["train", "--config", str(out / "config.yaml"), "--out", str(out), "--resume"]) == 0
    assert "resumed from epoch 1" in capsys.readouterr().out


def test_init_with_other_features_warns_in_one_line(cache, tmp_path, capsys):  # noqa: F811
    source = tmp_path / "source"
    assert main(["train", "--config", _write(tmp_path / "a.yaml", tiny_config(cache, epochs=1)),
                 "--out", str(source)]) == 0
    capsys.readouterr()
    grey = apply_overrides(tiny_config(cache, epochs=1, init=str(source / "best.pt")), ["data.colours=false"])
    assert grey["data"]["colours"] is False  # --set reaches a data setting the config leaves out
    assert main(["train", "--config", _write(tmp_path / "b.yaml", grey), "--out", str(tmp_path / "grey")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "train.init" in line]
    assert len(warned) == 1 and "colours True" in warned[0] and "colours False" in warned[0]


def test_confusion_plot_has_numbers_colour_bar_and_epoch(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from pcseg.training.plots import plot_confusion

    saved = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (saved.append(self), original(self, *a, **k))[1])
    plot_confusion([[5, 1], [0, 4]], ["floor", "wall"], tmp_path / "c.png", "validation x, epoch 3")
    figure = saved[0]
    matrix = figure.axes[0]
    assert [t.get_text() for t in matrix.texts] == ["83", "17", "100"]  # empty cells left blank
    assert len(figure.axes) == 2 and "epoch 3" in matrix.get_title()   # the colour bar is the second
    assert (tmp_path / "c.png").stat().st_size > 0
