import pytest
import yaml

from birdtpu.config import (
    Config,
    config_from_dict,
    load_config,
    parse_override,
    save_config,
    to_dict,
)
from birdtpu.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_and_yaml_and_overrides(tmp_path):
    path = write(tmp_path, "name: x\ntrain:\n  epochs: 3\n  lr: 1\n")
    cfg = load_config(
        path, ["train.epochs=7", "data.root=gs://bucket/data", "runtime.deterministic=true"]
    )
    assert cfg.name == "x" and cfg.train.epochs == 7
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # an int where a float goes
    assert cfg.data.root == "gs://bucket/data" and cfg.runtime.deterministic is True
    assert cfg.run_dir == "runs/x"
    local = load_config(path, [f"data.root={tmp_path}", f"output_dir={tmp_path}/runs"])
    assert local.shard_dir.startswith(f"{tmp_path}/runs/shard-cache/birdclef-")
    assert load_config(path, ["shards.dir=gs://bucket/shards"]).shard_dir == "gs://bucket/shards"


@pytest.mark.parametrize(
    "text, message",
    [
        ("train:\n  epoch: 3\n", "unknown key 'train.epoch'; did you mean train.epochs?"),
        ("trian:\n  epochs: 3\n", "unknown key 'trian'; did you mean train?"),
        ("train:\n  epochs: three\n", "train.epochs: expected an integer, got 'three'"),
        ("train:\n  epochs: 2.5\n", "train.epochs: expected an integer"),
        ("runtime:\n  deterministic: 1\n", "runtime.deterministic: expected true or false"),
        ("augment:\n  mixup_prob: -0.1\n", "augment.mixup_prob: -0.1 is below the minimum 0.0"),
        ("model:\n  activation: relu\n", "model.activation: 'relu' is not one of"),
        ("synth:\n  sample_rates: 32000\n", "synth.sample_rates: expected a list"),
        (
            "frontend:\n  clip_seconds: 90\n",
            "frontend.clip_seconds: 90.0 is longer than the shard window",
        ),
        ("data:\n  fold: 5\n  num_folds: 5\n", "data.fold: 5 must be below data.num_folds"),
        ("train: [1, 2]\n", "train: expected a mapping"),
        ("train:\n  epochs: [\n", "invalid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert (
        path in str(err.value)
        or "must be below" in str(err.value)
        or "longer than" in str(err.value)
    )
    assert "\n" not in str(err.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config("nope.yaml")


def test_override_parsing():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=true") == (["a"], True)
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=x: y: z") == (["a"], "x: y: z")  # not YAML: kept as text
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("train.epochs")
    with pytest.raises(ConfigError, match="unknown key 'train.epoks'"):
        load_config(None, ["train.epoks=3"])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=4", "synth.sample_rates=[16000]"])
    path = str(tmp_path / "run" / "config.yaml")
    save_config(cfg, path)
    with open(path) as fh:
        data = yaml.safe_load(fh)
    assert config_from_dict(data) == cfg
    assert to_dict(Config()) != to_dict(cfg)


def test_numbers_in_exponent_form_and_non_finite():
    assert load_config(None, ["train.lr=1e-3"]).train.lr == 0.001
    with pytest.raises(ConfigError, match="train.lr: expected a finite number"):
        load_config(None, ["train.lr=nan"])
