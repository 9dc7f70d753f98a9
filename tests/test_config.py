import pytest

from hsjp.config import CONFIG_DIR, Config, load_config, save_config
from hsjp.errors import ConfigError
from hsjp.experiment import ExperimentConfig, load_experiment


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads(path):
    cfg = (load_experiment if path.stem.startswith("experiment") else load_config)(str(path))
    assert isinstance(cfg, (Config, ExperimentConfig))


def test_official_recipes_match_the_papers():
    r50 = load_config("simplebaseline_r50_coco_256x192")
    assert (r50.model.arch, r50.train.epochs, r50.train.milestones, r50.data.batch_size) == ("resnet50", 140, [90, 120], 32)
    hr = load_config("hrnet_w32_coco_256x192")
    assert (hr.model.arch, hr.train.epochs, hr.train.milestones, hr.data.input_size) == ("hrnet_w32", 210, [170, 200], [192, 256])
    assert hr.train.lr == 1e-3 and hr.data.sigma == 2.0 and hr.augment.rotation == 45 and hr.augment.scale_factor == 0.35


def test_overrides_are_typed_and_checked(tmp_path):
    cfg = load_config("cpu_r18_128x96", ["train.epochs=3", "jigsaw.grid=[2,2]", "data.oks_sigmas=[0.1,0.2]"])
    assert cfg.train.epochs == 3 and cfg.jigsaw.grid == [2, 2] and cfg.data.oks_sigmas == [0.1, 0.2]
    with pytest.raises(ConfigError, match="data.nope"):
        load_config("cpu_r18_128x96", ["data.nope=1"])
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config("cpu_r18_128x96", ["train.epochs=many"])
    with pytest.raises(ConfigError, match="not of the form"):
        load_config("cpu_r18_128x96", ["train.epochs"])
    with pytest.raises(ConfigError, match="neither a file nor a shipped config"):
        load_config("no_such_config")
    saved = save_config(cfg, tmp_path / "c.yaml")
    assert load_config(str(saved)) == cfg


def test_malformed_yaml_in_a_file_or_an_override_is_one_line_naming_it(tmp_path, capsys):
    from hsjp.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  milestones: [1,\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: not valid YAML \(.* at line 4\)$"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match=r"^override 'train.milestones=\[5': its value is not valid YAML \(.+\)$"):
        load_config("cpu_r18_128x96", ["train.epochs=3", "train.milestones=[5"])
    # an experiment's overrides go through the same loader
    assert main(["experiment", "--config", "experiment_lspet_r18_labels", "--out", str(tmp_path / "x"), "--report-only",
                 'fraction_seeds={"1.0": [0, 1}']) == 2
    err = capsys.readouterr().err
    assert err.startswith("hsjp: error: override 'fraction_seeds=") and err.count("\n") == 1


def test_batch_limits_keep_lightnings_meaning():
    """An integer limit is a number of batches, a float a share: '1' must not become 1.0 (all batches)."""
    cfg = load_config(None, ["train.limit_val_batches=1", "train.limit_train_batches=0.5"])
    assert cfg.train.limit_val_batches == 1 and isinstance(cfg.train.limit_val_batches, int)
    assert cfg.train.limit_train_batches == 0.5
