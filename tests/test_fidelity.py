"""docs/FIDELITY.md's switches exist, change the model and round-trip; the `paper` preset
builds and steps at 64 px with every paper setting on; its test-time mode exports."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.configs import load_config
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.export.tflite import convert_to_tflite, litert_interpreter, op_names, run_tflite
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.runs import write_config_file
from gfrnet_tf.training.schedule import plateau_schedule
from support import ROOT, built_gfrnet, config_round_trip, keras_file_round_trip, smooth_batch

FIDELITY = ROOT / "docs" / "FIDELITY.md"
SMALL = {
    "widths": (8, 16, 32, 32, 32, 32),
    "discriminator_widths": (8, 16, 32, 32),
    "local_size": 32,
}
SIZE = 64

# A value other than the `recommended` preset's for every switch FIDELITY.md names.
MODEL_ALTERNATIVES = {
    "widths": (8, 16, 32, 32, 64, 64),
    "warpnet_widths": (8, 16, 16, 16, 16, 16),
    "recnet_widths": (4, 8, 16, 16, 16, 16),
    "init_stddev": 0.03,
    "warpnet_init_stddev": 0.04,
    "flow_mode": "absolute",
    "dropout": 0.3,
    "local_margin": 0.0,
    "local_size": 48,
    "part_discriminators": True,
    "loss_reduction": "official",
    "tv_target": "flow",
    "d_loss_halved": True,
    "detach_warped_guide": True,
    "symmetry_shift": 0.05,
    "real_label": 0.8,
    "loss_weights": {"tv": 2.0},
    "test_time_norm": "per_image",
    "test_time_dropout": True,
}
# Switches that only choose files or the data, not the built network: checked in config.json.
CONFIG_ONLY_ALTERNATIVES = {
    "model.vgg_face_weights": "vgg_face.npz",
    "model.perceptual_layer": "conv3_3",
    "train.warp_pretrain_epochs": 2,
    "train.learning_rates": (1e-4,),
    "train.plateau_patience": 3,
    "train.plateau_monitor": "val_reconstruction",
    "train.warpnet_lr_multiplier": 0.1,
    "input.flip": False,
    "input.degradation": {"scale": (2.0,)},
}


def _named_switches():
    return sorted(
        set(re.findall(r"`config\.((?:model|train|input)\.[a-z_0-9]+)", FIDELITY.read_text()))
    )


def _small(config_name="recommended", **model):
    config = load_config(config_name)
    config.input.image_size = SIZE
    config.model.update({**SMALL, **model})
    return config


def _serialised(model):
    return json.dumps(model.get_config(), sort_keys=True, default=str)


def test_every_named_switch_is_in_the_presets_and_has_a_test_value():
    switches = _named_switches()
    assert len(switches) >= 20  # the table was parsed
    for switch in switches:
        section, key = switch.split(".")
        for preset in ("paper", "recommended", "smoke"):
            assert key in load_config(preset)[section], (preset, switch)
        tested = key in MODEL_ALTERNATIVES if section == "model" else False
        assert tested or switch in CONFIG_ONLY_ALTERNATIVES, f"{switch}: no test value"


@pytest.fixture(scope="module")
def recommended_serialised():
    return _serialised(build_gfrnet(_small().model))


@pytest.mark.parametrize("key", sorted(MODEL_ALTERNATIVES))
def test_each_model_switch_changes_the_model_and_round_trips_through_get_config(
    key, recommended_serialised
):
    changed = build_gfrnet(_small(**{key: MODEL_ALTERNATIVES[key]}).model)
    assert _serialised(changed) != recommended_serialised, key
    config_round_trip(changed)


def test_all_switches_survive_a_keras_file_and_config_json(tmp_path):
    config = _small(**MODEL_ALTERNATIVES)
    for switch, value in CONFIG_ONLY_ALTERNATIVES.items():
        section, key = switch.split(".")
        if isinstance(value, dict):
            config[section][key].update(value)
        else:
            config[section][key] = value
    write_config_file(config, str(tmp_path / "config.json"))
    assert load_config(str(tmp_path / "config.json")).to_dict() == json.loads(config.to_json())

    model_config = {**config.model.to_dict(), "vgg_face_weights": ""}
    model = built_gfrnet(model_config, SIZE)
    loaded = keras_file_round_trip(model, tmp_path)
    assert _serialised(loaded) == _serialised(model)
    assert loaded.recnet.test_time_norm == "per_image" and loaded.recnet.test_time_dropout
    assert loaded.loss_reduction == "official" and loaded.tv_target == "flow"


def _pair(batch=1, seed=0):
    return smooth_batch(SIZE, batch, seed, margin=12)


@pytest.fixture(scope="module")
def paper_model():
    """The `paper` preset, only made small enough for 64 px (widths, local crop size)."""
    config = load_config("paper")
    assert (
        config.model.flow_mode,
        config.model.loss_reduction,
        config.model.tv_target,
        config.model.test_time_norm,
        config.model.test_time_dropout,
        config.model.local_margin,
        config.train.plateau_monitor,
        config.input.batch_size,
    ) == ("absolute", "paper", "flow", "per_image", True, 0.0, "val_reconstruction", 1)
    config.model.update(SMALL)
    keras.utils.set_random_seed(0)
    model = build_gfrnet(config.model)
    optimizers = [
        keras.optimizers.Adam(config.train.learning_rates[0], beta_1=config.train.adam_beta_1)
        for _ in "gd"
    ]
    model.compile(*optimizers)
    model.build_all((SIZE, SIZE))
    return model, config


def test_paper_preset_steps_once_in_each_phase_and_validates_in_its_test_mode(paper_model):
    model, config = paper_model
    batch = _pair(batch=config.input.batch_size)
    model.phase = "warp"
    warp = {name: float(value) for name, value in model.train_step(batch).items()}
    model.phase = "joint"
    joint = {name: float(value) for name, value in model.train_step(batch).items()}
    validation = {name: float(value) for name, value in model.test_step(batch).items()}
    for logs in (warp, joint, validation):
        assert all(np.isfinite(value) for value in logs.values()), logs
    assert set(warp) == {"landmark", "tv", "g_total"}
    # The paper's reading: l2 is the squared norm over the 64 x 64 x 3 image.
    restored = model(batch[0])["restored"]  # dropout on: not the step's own output
    assert joint["l2"] > 100 * float(np.mean((restored.numpy() - batch[1]["target"]) ** 2))
    # The schedule watches Eq. 6's reconstruction loss, which validation reports.
    assert plateau_schedule(config.train).monitor == "val_reconstruction"
    assert validation["reconstruction"] == pytest.approx(
        100.0 * validation["l2"], rel=1e-5
    )  # no VGG
    # Inference in the official test script's mode: dropout on, so two runs differ.
    first, second = (model(batch[0])["restored"].numpy() for _ in range(2))
    assert np.abs(first - second).max() > 1e-4


def test_paper_test_time_mode_exports_to_builtin_tflite_and_savedmodel(paper_model, tmp_path):
    model, _ = paper_model
    from tensorflow.lite.python import schema_py_generated as schema

    builtin = {name for name in vars(schema.BuiltinOperator) if name.isupper()} - {"CUSTOM"}
    interpreter = litert_interpreter(convert_to_tflite(model, SIZE, "fp32"))
    ops = op_names(interpreter)
    assert ops <= builtin, ops - builtin
    assert {"MEAN", "RSQRT", "RANDOM_UNIFORM"} <= ops  # per-image statistics, dropout
    inputs, _ = _pair(batch=1, seed=1)  # the interpreter is built for batch 1
    runs = [
        run_tflite(interpreter, inputs["degraded"], inputs["guide"])["restored"] for _ in range(2)
    ]
    assert np.abs(runs[0] - runs[1]).max() > 1e-4  # dropout is in the export too

    exported = tf.saved_model.load(
        str(export_savedmodel(model, tmp_path / "serving", SIZE, version=1))
    )
    uint8 = {
        name: tf.constant(np.round((image + 1.0) * 127.5).astype(np.uint8))
        for name, image in inputs.items()
    }
    served = [
        exported.signatures["serving_default"](**uint8)["restored"].numpy().astype(int)
        for _ in range(2)
    ]
    assert np.abs(served[0] - served[1]).max() > 0


def test_detached_warped_guide_trains_warpnet_on_the_flow_loss_alone():
    model = build_gfrnet(_small(detach_warped_guide=True).model)
    inputs, targets = _pair(batch=2)
    variables = model.warpnet.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        outputs = model(inputs, training=True)
        terms = model._weighted_total(
            model._generator_terms(inputs, targets, outputs, training=True)
        )
        flow = model._weighted_total(model._flow_terms(outputs["flow"], targets))
    for joint_gradient, flow_gradient in zip(
        tape.gradient(terms["g_total"], variables), tape.gradient(flow["g_total"], variables)
    ):
        np.testing.assert_allclose(joint_gradient, flow_gradient, rtol=1e-4, atol=1e-7)
    attached = build_gfrnet(
        _small(detach_warped_guide=False).model
    )  # RecNet's losses reach WarpNet
    attached(inputs)
    attached.set_weights(model.get_weights())
    with tf.GradientTape() as tape:
        restored = tf.reduce_sum(attached(inputs, training=True)["restored"])
    assert all(
        float(tf.reduce_max(tf.abs(gradient))) > 0
        for gradient in tape.gradient(restored, attached.warpnet.trainable_variables)
    )
