"""The paper preset is §4.1 and builds; smoke.py is small; overrides and bad values fail by name."""

import json
import os

import pytest
from absl import flags
from ml_collections import config_flags

from gfrnet_tf.configs import load_config, preset_path, save_config
from gfrnet_tf.errors import BadConfigError

PAPER = "paper"
SMOKE = "smoke"


def test_paper_config_is_section_4_1():
    config = load_config(PAPER)
    assert config.input.image_size == 256 and config.input.batch_size == 1
    assert tuple(config.train.learning_rates) == (2e-4, 2e-5, 2e-6)
    assert config.train.adam_beta_1 == 0.5
    assert config.train.warp_pretrain_epochs == 5 and config.train.epochs == 100
    paper_weights = {"l2": 100.0, "perceptual": 0.001, "adv_global": 1.0, "adv_local": 0.5, "landmark": 10.0, "tv": 1.0}
    assert {name: config.model.loss_weights[name] for name in paper_weights} == paper_weights
    assert not config.model.part_discriminators  # an extension, off as in the paper
    # Depth 8 takes 256 px to 1x1, as WarpNet/RecNet's encoders require.
    assert config.input.image_size == 2 ** len(config.model.widths)
    assert config.input.flip and config.input.degradation.mode == "random"


def test_smoke_config_is_the_paper_config_made_small():
    paper, smoke = load_config(PAPER), load_config(SMOKE)
    assert smoke.input.image_size == 64 == 2 ** len(smoke.model.widths)
    assert max(smoke.model.widths) <= 32
    assert smoke.train.steps_per_epoch % smoke.train.checkpoint_every == 0
    # Only sizes and lengths differ: the schedule and loss weights are the paper's.
    assert smoke.train.learning_rates == paper.train.learning_rates
    assert smoke.model.loss_weights == paper.model.loss_weights
    assert set(smoke.keys()) == set(paper.keys())


@pytest.mark.parametrize("path", [PAPER, SMOKE])
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
    save_config(config, str(path))
    assert json.loads(path.read_text())["train"]["checkpoint_every"] == config.train.checkpoint_every
    assert load_config(str(path)).to_dict() == json.loads(config.to_json())
    assert os.listdir(path.parent) == ["config.json"]  # no temporary left behind


@pytest.mark.parametrize("content, problem", [
    (None, "no such config file"),
    ("def get_config(:\n", "SyntaxError"),
    ("x = 1\n", "AttributeError"),
])
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
    holder = config_flags.DEFINE_config_file("config", flag_values=values, lock_config=True, sys_argv=argv)
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
