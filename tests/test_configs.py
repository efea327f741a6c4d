"""The paper preset is §4.2 and builds; smoke.py is small; overrides and bad values fail by name."""

import collections
import fractions
import json
import os

import pytest
from absl import flags
from ml_collections import config_flags

from gfrnet_tf.configs import PRESETS, load_config, preset_path
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.runs import write_config_file

PAPER = "paper"
SMOKE = "smoke"


def test_paper_config_is_section_4_2():
    config = load_config(PAPER)
    assert config.input.image_size == 256 and config.input.batch_size == 1
    assert tuple(config.train.learning_rates) == (2e-4, 2e-5, 2e-6)
    assert config.train.adam_beta_1 == 0.5
    assert config.train.warp_pretrain_epochs == 5 and config.train.epochs == 100
    paper_weights = {
        "l2": 100.0,
        "perceptual": 0.001,
        "adv_global": 1.0,
        "adv_local": 0.5,
        "landmark": 10.0,
        "tv": 1.0,
    }
    assert {name: config.model.loss_weights[name] for name in paper_weights} == paper_weights
    assert not config.model.part_discriminators  # an extension, off as in the paper
    # Depth 8 takes 256 px to 1x1, as WarpNet/RecNet's encoders require; the official
    # WarpNet's widths for both (§3.1: RecNet "of the same structure").
    assert config.input.image_size == 2 ** len(config.model.widths)
    assert tuple(config.model.widths) == (64, 128, 256, 512, 1024, 1024, 1024, 1024)
    assert config.model.warpnet_widths == () and config.model.recnet_widths == ()
    assert config.input.flip and config.input.degradation.mode == "random"


def test_smoke_config_is_the_recommended_config_made_small():
    recommended, smoke = load_config("recommended"), load_config(SMOKE)
    assert smoke.input.image_size == 64 == 2 ** len(smoke.model.widths)
    assert max(smoke.model.widths) <= 32
    assert smoke.train.steps_per_epoch % smoke.train.checkpoint_every == 0
    # Only sizes and lengths differ: the schedule, loss weights and readings are recommended's.
    assert smoke.train.learning_rates == recommended.train.learning_rates
    assert smoke.model.loss_weights == recommended.model.loss_weights
    assert set(smoke.keys()) == set(recommended.keys())
    sizes = {"widths", "discriminator_widths", "local_size"}
    assert {key: smoke.model[key] for key in smoke.model if key not in sizes} == {
        key: recommended.model[key] for key in recommended.model if key not in sizes
    }


def test_presets_differ_from_paper_only_in_their_named_readings():
    paper = load_config(PAPER).to_dict()

    def differences(name):
        other = load_config(name).to_dict()
        return {
            f"{section}.{key}"
            for section in paper
            for key in paper[section]
            if other[section][key] != paper[section][key]
        }

    assert differences("paper512") == {"model.widths"}
    assert differences("official") == {"model.loss_reduction", "input.degradation"}
    assert differences("recommended") == {
        "model.widths",
        "model.warpnet_init_stddev",
        "model.flow_mode",
        "model.loss_reduction",
        "model.tv_target",
        "model.local_margin",
        "model.test_time_norm",
        "model.test_time_dropout",
        "model.image_range",
        "model.innermost_activation",
        "model.skip_activation",
        "train.plateau_monitor",
    }


def _official_draws(drawn, applied, value, none):
    """The distribution of what the official loader applies: each drawn integer equally
    likely, `value(k)` when `applied(k)`, else `none`."""
    counts = collections.Counter(value(k) if applied(k) else none for k in drawn)
    return {v: fractions.Fraction(c, len(drawn)) for v, c in counts.items()}


def _set_distribution(values):
    counts = collections.Counter(values)
    return {v: fractions.Fraction(c, len(values)) for v, c in counts.items()}


def test_official_degradation_sets_reproduce_the_official_loader_exactly():
    sets = load_config("official").input.degradation
    # GFRNet_WarpNet (ff10f06) data/facefh_dataset.py: Python's random.randint includes its
    # upper bound, numpy's np.random.randint (the noise, line 31) excludes it.
    official = {
        "blur": _official_draws(range(20, 42), lambda k: k <= 25, lambda k: k / 10, 0.0),
        "scale": _official_draws(range(10, 91), lambda k: k <= 80, lambda k: k / 10, 1.0),
        "noise": _official_draws(range(5, 40), lambda k: k <= 15, float, 0.0),
        "jpeg_quality": _official_draws(range(50, 81), lambda k: k < 70, int, 0),
    }
    for name, distribution in official.items():
        assert _set_distribution(tuple(sets[name])) == distribution, name
    assert official["noise"][0.0] == fractions.Fraction(24, 35)  # noise in 11 of 35 draws


@pytest.mark.parametrize("path", PRESETS)
def test_configs_build_a_gfrnet_and_offer_every_model_key(path):
    from gfrnet_tf.models.gfrnet import DEFAULT_LOSS_WEIGHTS, MODEL_CONFIG_DEFAULTS, build_gfrnet

    config = load_config(path)
    # Every key can be overridden from the command line only if the config has it.
    assert set(config.model.keys()) == set(MODEL_CONFIG_DEFAULTS)
    assert set(config.model.loss_weights.keys()) == set(DEFAULT_LOSS_WEIGHTS)
    config.model.widths = (4,) * 5  # the keys matter here, not the size
    config.model.discriminator_widths = (4, 4)
    model = build_gfrnet(config.model)
    assert model.variant == "full" and model.loss_weights["l2"] == 100.0


def test_saved_config_json_loads_back_equal(tmp_path):
    config = load_config(SMOKE)
    path = tmp_path / "run" / "config.json"
    write_config_file(config, str(path))
    assert (
        json.loads(path.read_text())["train"]["checkpoint_every"] == config.train.checkpoint_every
    )
    assert load_config(str(path)).to_dict() == json.loads(config.to_json())
    assert os.listdir(path.parent) == ["config.json"]  # no temporary left behind


@pytest.mark.parametrize(
    "content, problem",
    [
        (None, "no such config file"),
        ("def get_config(:\n", "SyntaxError"),
        ("x = 1\n", "AttributeError"),
    ],
)
def test_bad_config_files_fail_by_name(tmp_path, content, problem):
    path = tmp_path / "config.py"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BadConfigError, match=problem) as raised:
        load_config(str(path))
    assert raised.value.source == str(path)


def _parse(*overrides):
    argv = ["gfrnet-train", f"--config={preset_path(SMOKE)}", *overrides]
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file(
        "config", flag_values=values, lock_config=True, sys_argv=argv
    )
    values(argv)
    return holder.value


def test_command_line_overrides_reach_the_config_and_typos_are_refused():
    config = _parse("--config.train.epochs=7", "--config.model.widths=(4,4,4,4,4,4)")
    assert config.train.epochs == 7 and tuple(config.model.widths) == (4,) * 6
    # ml_collections raises AttributeError here; gfrnet-train turns it into one line.
    with pytest.raises(AttributeError, match="epocs"):
        _parse("--config.train.epocs=7")
    with pytest.raises(flags.Error):
        _parse("--config.train.epochs=seven")
