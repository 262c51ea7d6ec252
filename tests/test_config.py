from pathlib import Path

import pytest

from flexseg.config import apply_overrides, load_experiment
from flexseg.errors import ConfigError
from tests.conftest import REPO, tiny_experiment, write_yaml


def load_dict(tmp_path, data, overrides=()):
    return load_experiment(write_yaml(tmp_path / "exp" / "e.yaml", data), overrides)


def error_of(tmp_path, data, overrides=()) -> str:
    with pytest.raises(ConfigError) as e:
        load_dict(tmp_path, data, overrides)
    return str(e.value)


def test_shipped_nbm_experiment_has_the_seed_values():
    exp = load_experiment(REPO / "experiments" / "nbm.yaml")
    assert (exp.image.width, exp.image.height, exp.image.channels) == (512, 512, 3)
    assert exp.num_classes == 2 and [tuple(c.color) for c in exp.classes] == [(0, 0, 0), (255, 255, 255)]
    m, t = exp.model, exp.train
    assert (m.base_filters, m.base_kernels, m.num_layers, m.dropout_rate) == (16, (9, 9), 8, 0.04)
    assert (t.learning_rate, t.clipvalue, t.batch_size, t.epochs, t.patience) == (7e-5, 0.4, 2, 100, 10)
    assert (t.reducer_factor, t.reducer_patience) == (0.4, 4)


def test_shipped_kneebones_experiment_has_the_seed_values():
    exp = load_experiment(REPO / "experiments" / "kneebones3dify.yaml")
    assert exp.model.base_kernels == (11, 11) and exp.model.dropout_rate == 0.05
    assert exp.train.clipvalue == 0.5 and exp.train.reducer_factor == 0.5
    assert tuple(exp.classes[1].color) == (128, 40, 40)


def test_demo_experiment_loads():
    assert load_experiment(REPO / "experiments" / "demo.yaml").num_classes == 3


def test_typo_key_gets_the_closest_valid_key(tmp_path):
    data = tiny_experiment(train={"reduer_patience": 3})
    assert "train.reduer_patience: unknown key; did you mean train.reducer_patience?" in error_of(tmp_path, data)


def test_unknown_key_without_a_close_match_lists_valid_keys(tmp_path):
    msg = error_of(tmp_path, tiny_experiment(image={"zzz": 1}))
    assert "image.zzz: unknown key; valid keys here: channels, context, height, width" in msg


def test_unknown_top_level_key(tmp_path):
    data = tiny_experiment()
    data["trian"] = {}
    assert "trian: unknown key; did you mean train?" in error_of(tmp_path, data)


def test_wrong_type_names_key_and_value(tmp_path):
    msg = error_of(tmp_path, tiny_experiment(train={"epochs": "many"}))
    assert "train.epochs" in msg and "'many'" in msg


def test_out_of_range_names_the_bound(tmp_path):
    msg = error_of(tmp_path, tiny_experiment(train={"epochs": -3}))
    assert "train.epochs: Input should be greater than or equal to 1 (got -3)" in msg


def test_size_not_divisible_by_the_depth(tmp_path):
    msg = error_of(tmp_path, tiny_experiment(image={"width": 100}))
    assert "image.width=100 is not divisible by 2^(num_layers-1)=8" in msg and "such as 96 or 104" in msg


def test_duplicate_class_colours_are_rejected(tmp_path):
    classes = [{"name": "a", "color": [0, 0, 0]}, {"name": "b", "color": [0, 0, 0]}]
    assert "share the color [0, 0, 0]" in error_of(tmp_path, tiny_experiment(classes=classes))


def test_one_class_is_not_enough(tmp_path):
    msg = error_of(tmp_path, tiny_experiment(classes=[{"name": "a", "color": [0, 0, 0]}]))
    assert msg.count("classes") and "at least 2" in msg


def test_colour_out_of_range(tmp_path):
    classes = [{"name": "a", "color": [0, 0, 0]}, {"name": "b", "color": [0, 300, 0]}]
    assert "classes[1].color[1]" in error_of(tmp_path, tiny_experiment(classes=classes))


def test_relative_paths_resolve_against_the_yaml_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a different working directory must not matter
    exp = load_dict(tmp_path, tiny_experiment(data={"root": "../data"}, infer={"images": "imgs"}))
    assert exp.data.root == (tmp_path / "data").resolve()
    assert exp.infer.images == (tmp_path / "exp" / "imgs").resolve()
    assert exp.data.split_dir("valid") == (tmp_path / "data" / "valid").resolve()


def test_set_overrides_are_typed_and_validated(tmp_path):
    exp = load_dict(
        tmp_path,
        tiny_experiment(),
        ["train.epochs=3", "image.width=128", "model.base_kernels=[5, 5]", "classes.1.name=cortex"],
    )
    assert exp.train.epochs == 3 and exp.image.width == 128 and exp.model.base_kernels == (5, 5)
    assert exp.classes[1].name == "cortex"
    msg = error_of(tmp_path, tiny_experiment(), ["train.epoch=3"])
    assert "train.epoch: unknown key; did you mean train.epochs?" in msg


def test_set_needs_key_equals_value():
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        apply_overrides({}, ["train.epochs"])


def test_yaml_syntax_error_gives_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nimage: {width: 64\n")
    with pytest.raises(ConfigError, match=r"YAML syntax error at line \d+, column \d+"):
        load_experiment(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.yaml")


def test_dropout_must_stay_below_one_at_the_deepest_level(tmp_path):
    assert "dropout_rate × (num_layers − 1)" in error_of(tmp_path, tiny_experiment(model={"dropout_rate": 0.4}))


def test_even_kernel_is_rejected(tmp_path):
    assert "model.base_kernels: must be a square odd kernel" in error_of(
        tmp_path, tiny_experiment(model={"base_kernels": [4, 4]})
    )


def test_default_run_dir_is_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_dict(tmp_path, tiny_experiment()).resolved_run_dir == Path(tmp_path).resolve() / "runs" / "tiny"
