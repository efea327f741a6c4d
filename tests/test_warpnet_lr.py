"""`config.train.warpnet_lr_multiplier`: WarpNet's joint-phase rate as a multiple of RecNet's.

Each update is checked against plain Keras Adam run another way (a whole optimizer at the
multiplied rate for WarpNet, at the plain rate for RecNet), through the plateau step-down,
`.keras` files, weights checkpoints (older ones too), a resumed `fit.train` workdir and
mixed precision. 32x32, the depth-3 widths of `support.SHALLOW` (the multiplier acts on
WarpNet's variables as a group, whatever their number), no dropout (two models stepped
from the same weights must draw nothing at random).
"""

import json

import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.configs import load_config
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.models.group_adam import GroupAdam
from gfrnet_tf.sample import Split, write_sample_dataset
from gfrnet_tf.training import fit
from gfrnet_tf.training.schedule import StepDownOnPlateau
from support import SHALLOW, SIZE, changed, keras_file_round_trip, smooth_batch, snapshot

MODEL = {**SHALLOW, "dropout": 0.0}
RATES = (2e-4, 2e-5)
MULTIPLIER = 0.25


def _model(g_optimizer):
    model = build_gfrnet(MODEL)
    model.compile(g_optimizer, keras.optimizers.Adam(RATES[0], beta_1=0.5))
    model.build_all((SIZE, SIZE))
    return model


def _group_adam(multiplier=MULTIPLIER):
    return GroupAdam(RATES[0], beta_1=0.5, group_multiplier=multiplier)


def _adam(rate=RATES[0]):
    return keras.optimizers.Adam(rate, beta_1=0.5)


def _state(model):
    optimizers = (model.g_optimizer, model.d_optimizer, model.w_optimizer)
    return snapshot(model.variables + [v for o in optimizers for v in o.variables])


def _pretrained(*g_optimizers):
    """Models with the same initial weights, each pre-trained for 2 warp steps, then in the
    joint phase."""
    models = [_model(optimizer) for optimizer in g_optimizers]
    for model in models:
        model.set_weights(models[0].get_weights())
    for model in models:
        model.phase = "warp"
        for _ in range(2):
            model.train_step(smooth_batch())
        model.phase = "joint"
    return models


def _joint_update(model):
    """One joint step; returns the WarpNet and RecNet trainable variables before and after."""
    networks = (model.warpnet.trainable_variables, model.recnet.trainable_variables)
    before = [snapshot(variables) for variables in networks]
    model.train_step(smooth_batch())
    return before, [snapshot(variables) for variables in networks]


def _assert_same_update(before, after, reference_before, reference_after):
    for b, a, rb, ra in zip(before, after, reference_before, reference_after):
        np.testing.assert_array_equal(b, rb)
        # The rates may differ in their last bit: float32 rate * m in the step vs a stored m * rate.
        np.testing.assert_allclose(a - b, ra - rb, rtol=1e-4, atol=1e-9)


def test_multiplier_one_trains_bit_for_bit_as_plain_adam():
    plain, grouped = _pretrained(
        _adam(), fit.make_optimizer(load_config("smoke").train, RATES[0], False, 1.0)
    )
    assert isinstance(grouped.g_optimizer, GroupAdam)
    for _ in range(2):
        plain.train_step(smooth_batch())
        grouped.train_step(smooth_batch())
    for a, b in zip(_state(plain), _state(grouped)):
        np.testing.assert_array_equal(a, b)


def test_recnets_first_joint_step_is_a_fresh_adams_first_step_after_pre_training():
    """With one optimizer for both phases, RecNet's zero moments were bias-corrected with the
    pre-training's step count n: its first joint step moved each weight by up to
    (1 - b1) / (1 - b1^(n+1)) * sqrt((1 - b2^(n+1)) / (1 - b2)) times the rate: 1.65x after
    10 warp steps (3.5x after 50, 9.9x after 500, 15.8x in the limit, at beta1 0.5; below 1x
    only for n <= 2). Adam's first step moves each weight by at most the rate."""
    model = _model(_adam())
    model.phase = "warp"
    for _ in range(10):
        model.train_step(smooth_batch())
    model.phase = "joint"
    assert int(model.g_optimizer.iterations.numpy()) == 0
    (_, before), (_, after) = _joint_update(model)
    steps = np.concatenate([np.abs(a - b).ravel() for a, b in zip(after, before)])
    assert steps.max() <= RATES[0] * 1.001, steps.max() / RATES[0]
    assert np.median(steps) > 0.5 * RATES[0]  # a real step: most weights move by ~the rate
    assert int(model.w_optimizer.iterations.numpy()) == 10
    assert int(model.g_optimizer.iterations.numpy()) == 1


def test_a_checkpoint_from_before_the_warp_optimizer_loads(tmp_path):
    import h5py

    (model,) = _pretrained(_adam())
    model.save_weights(tmp_path / "step-00000002.weights.h5")
    with h5py.File(tmp_path / "step-00000002.weights.h5", "r+") as stored:
        del stored["w_optimizer"]  # what checkpoints held before each phase had its own
    loaded = _model(_adam())
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        loaded.load_weights(tmp_path / "step-00000002.weights.h5")
    for a, b in zip(
        snapshot(model.variables + model.g_optimizer.variables),
        snapshot(loaded.variables + loaded.g_optimizer.variables),
    ):
        np.testing.assert_array_equal(a, b)
    assert int(loaded.w_optimizer.iterations.numpy()) == 0  # starts fresh


@pytest.mark.parametrize("rate_set_by", ["the optimizer", "the plateau step-down"])
def test_warpnet_steps_as_adam_at_the_multiplied_rate_recnet_at_the_plain_one(rate_set_by):
    grouped, warp_reference, rec_reference = _pretrained(_group_adam(), _adam(), _adam())
    rate = RATES[0]
    if rate_set_by == "the plateau step-down":
        schedule = StepDownOnPlateau(RATES, patience=1)
        schedule.set_model(grouped)
        schedule.on_train_begin()
        for epoch in range(2):
            schedule.on_epoch_end(epoch, {"val_l2": 1.0})  # no progress: RATES[0] -> RATES[1]
        rate = RATES[1]
        assert float(grouped.g_optimizer.learning_rate.numpy()) == pytest.approx(rate)
    warp_reference.g_optimizer.learning_rate = rate * MULTIPLIER
    rec_reference.g_optimizer.learning_rate = rate

    (warp_before, rec_before), (warp_after, rec_after) = _joint_update(grouped)
    (reference_before, _), (reference_after, _) = _joint_update(warp_reference)
    (_, plain_before), (_, plain_after) = _joint_update(rec_reference)
    _assert_same_update(warp_before, warp_after, reference_before, reference_after)
    for b, a, rb, ra in zip(rec_before, rec_after, plain_before, plain_after):
        np.testing.assert_array_equal(b, rb)
        np.testing.assert_array_equal(a, ra)  # RecNet: the plain rate, bit for bit
    assert all(changed(warp_before, grouped.warpnet.trainable_variables))


def test_multiplier_zero_freezes_warpnet_after_pre_training_only():
    # Through `fit`: the group is named while the step function is traced, once per phase.
    model = _model(_group_adam(multiplier=0.0))
    data = tf.data.Dataset.from_tensors(smooth_batch()).repeat()
    initial = snapshot(model.warpnet.trainable_variables)
    model.phase = "warp"
    model.fit(data, steps_per_epoch=2, epochs=1, shuffle=False, verbose=0)
    assert all(changed(initial, model.warpnet.trainable_variables))  # pre-training: the plain rate
    pretrained = snapshot(model.warpnet.trainable_variables)
    recnet = snapshot(model.recnet.trainable_variables)
    model.phase = "joint"
    model.fit(data, steps_per_epoch=3, epochs=1, shuffle=False, verbose=0)
    assert not any(changed(pretrained, model.warpnet.trainable_variables))
    assert all(changed(recnet, model.recnet.trainable_variables))
    # Each phase its own Adam state: 2 pre-training steps, 3 joint ones.
    assert int(model.w_optimizer.iterations.numpy()) == 2
    assert int(model.g_optimizer.iterations.numpy()) == 3


def test_keras_file_keeps_the_multiplier_and_the_optimizer_state(tmp_path):
    (model,) = _pretrained(_group_adam())
    model.train_step(smooth_batch())
    loaded = keras_file_round_trip(model, tmp_path)
    assert (
        isinstance(loaded.g_optimizer, GroupAdam)
        and loaded.g_optimizer.group_multiplier == MULTIPLIER
    )
    for a, b in zip(_state(model), _state(loaded)):
        np.testing.assert_array_equal(a, b)
    before = snapshot(model.warpnet.trainable_variables)
    model.train_step(smooth_batch())
    loaded.train_step(smooth_batch())
    for a, b in zip(_state(model), _state(loaded)):
        np.testing.assert_array_equal(a, b)
    assert all(changed(before, loaded.warpnet.trainable_variables))


def test_files_saved_with_plain_adam_load_and_resume_at_the_multiplier(tmp_path):
    (old,) = _pretrained(_adam())  # what every run before the switch saved
    old.train_step(smooth_batch())
    old.save(tmp_path / "old.keras")
    old.save_weights(tmp_path / "step-00000003.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "old.keras")
    assert type(loaded.g_optimizer) is keras.optimizers.Adam  # no group: the plain rate
    resumed = _model(_group_adam())  # a run resumed with the switch set
    resumed.load_weights(tmp_path / "step-00000003.weights.h5")
    for a, b, c in zip(_state(old), _state(loaded), _state(resumed)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    reference = _model(_adam(RATES[0] * MULTIPLIER))
    reference.load_weights(tmp_path / "step-00000003.weights.h5")
    reference.g_optimizer.learning_rate = RATES[0] * MULTIPLIER
    (before, _), (after, _) = _joint_update(resumed)
    (reference_before, _), (reference_after, _) = _joint_update(reference)
    _assert_same_update(before, after, reference_before, reference_after)


@pytest.mark.parametrize("multiplier", [0.0, MULTIPLIER])
def test_mixed_precision_step_takes_the_multiplier_through_the_loss_scale(
    mixed_float16, multiplier
):
    def loss_scaled(optimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=16.0)

    grouped, reference = _pretrained(loss_scaled(_group_adam(multiplier)), loss_scaled(_adam()))
    reference.g_optimizer.learning_rate = RATES[0] * multiplier
    (before, _), (after, _) = _joint_update(grouped)
    (reference_before, _), (reference_after, _) = _joint_update(reference)
    # no step skipped: 2 pre-training steps (their own optimizer), 1 joint step
    assert int(grouped.w_optimizer.inner_optimizer.iterations.numpy()) == 2
    assert int(grouped.g_optimizer.inner_optimizer.iterations.numpy()) == 1
    _assert_same_update(before, after, reference_before, reference_after)
    assert any(changed(before, grouped.warpnet.trainable_variables)) == (multiplier > 0)


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf"), "0.1", True, None])
def test_bad_multipliers_are_one_config_error(value):
    train = load_config("smoke").train.to_dict()
    train["warpnet_lr_multiplier"] = value  # a config.json may hold anything
    with pytest.raises(BadConfigError) as raised:
        fit.check_train_config(ml_collections.ConfigDict(train))
    assert raised.value.source == "config.train.warpnet_lr_multiplier"
    assert str(raised.value).startswith(
        "config.train.warpnet_lr_multiplier: must be a finite number >= 0"
    )
    assert "\n" not in str(raised.value)


def test_every_preset_defaults_to_one_and_old_configs_too():
    from gfrnet_tf.configs import PRESETS

    assert {load_config(name).train.warpnet_lr_multiplier for name in PRESETS} == {1.0}
    old = load_config("smoke").to_dict()
    del old["train"]["warpnet_lr_multiplier"]  # a config.json written before the switch
    assert fit.warpnet_lr_multiplier(ml_collections.ConfigDict(old["train"])) == 1.0


@pytest.mark.slow
def test_a_resumed_workdir_keeps_the_multiplier_and_the_optimizer_state(tmp_path):
    dataset = write_sample_dataset(
        tmp_path / "data", SIZE, (Split("train", 4, 1, 1), Split("val", 2, 1, 2))
    )
    config = load_config("smoke")
    config.input.image_size = SIZE
    config.model.update(MODEL)
    config.train.update(
        dict(
            warp_pretrain_epochs=1,
            epochs=1,
            steps_per_epoch=2,
            checkpoint_every=2,
            summary_every=2,
            warpnet_lr_multiplier=MULTIPLIER,
        )
    )
    workdir = tmp_path / "run"
    first = fit.train(config, workdir, dataset, verbose=0)
    assert (
        json.loads((workdir / "config.json").read_text())["train"]["warpnet_lr_multiplier"]
        == MULTIPLIER
    )
    # The same run again: nothing left to train, the model comes back from the backup.
    resumed = fit.train(config, workdir, dataset, verbose=0)
    assert resumed.g_optimizer.group_multiplier == MULTIPLIER
    assert int(resumed.w_optimizer.iterations.numpy()) == 2  # pre-training
    assert int(resumed.g_optimizer.iterations.numpy()) == 2  # joint
    for a, b in zip(_state(first), _state(resumed)):
        np.testing.assert_array_equal(a, b)
    for model in (first, resumed):
        model.phase = "joint"
    before = snapshot(first.warpnet.trainable_variables)
    first.train_step(smooth_batch())
    resumed.train_step(smooth_batch())
    for a, b in zip(_state(first), _state(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert all(changed(before, resumed.warpnet.trainable_variables))
