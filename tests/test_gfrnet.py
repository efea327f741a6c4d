"""GFRNet's training model: learning, step isolation, variants, phases, serialisation.

32x32 images, batch 2, networks a few filters wide; steps run eagerly except where `fit`
itself is what is tested (tracing the GAN step costs seconds).
"""

import json
import logging
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf import losses
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.models.gfrnet import DEFAULT_LOSS_WEIGHTS, TRACKED, VARIANTS, build_gfrnet
from support import (
    BATCH,
    SIZE,
    TINY,
    changed,
    config_round_trip,
    keras_file_round_trip,
    run_checkout,
    smooth_batch,
    snapshot,
)


def _model(lr=2e-4, **config):
    model = build_gfrnet({**TINY, **config})
    model.compile(keras.optimizers.Adam(lr, beta_1=0.5), keras.optimizers.Adam(lr, beta_1=0.5))
    model.build_all((SIZE, SIZE))
    return model


def test_generator_step_leaves_discriminators_alone_and_vice_versa():
    model = _model(part_discriminators=True, part_size=16)  # parts on: five discriminators
    inputs, targets = smooth_batch()
    generator = model._generator_variables()
    discriminators = model._discriminator_variables()
    assert len(discriminators) == 6 * len(model.global_discriminator.trainable_variables)
    d_before, g_before = snapshot(discriminators), snapshot(generator)
    outputs = model._generator_step(inputs, targets)
    assert not any(changed(d_before, discriminators))
    assert all(changed(g_before, generator))
    assert float(model.trackers["adv_parts"].result()) > 0

    g_before = snapshot(model.warpnet.variables + model.recnet.variables)  # BN statistics too
    model._discriminator_step(inputs, targets, outputs["restored"])
    assert not any(changed(g_before, model.warpnet.variables + model.recnet.variables))
    assert all(changed(d_before, discriminators))


def test_exact_flow_gives_zero_landmark_term_in_the_model():
    model = build_gfrnet(TINY)
    _, targets = smooth_batch()
    # Guide landmarks = target landmarks moved by (+3, -2) px; the flow sampling the guide
    # 3 px right and 2 px up of every pixel is exact for them.
    shift = np.array([3.0, -2.0], np.float32)
    xx, yy = np.meshgrid(np.arange(SIZE, dtype=np.float32), np.arange(SIZE, dtype=np.float32))
    flow = 2.0 * (np.stack([xx, yy], -1) + shift) / (SIZE - 1) - 1.0
    flow = np.broadcast_to(flow, (BATCH, SIZE, SIZE, 2)).astype(np.float32)
    exact = {**targets, "guide_landmarks": targets["landmarks"] + shift}
    np.testing.assert_allclose(model._flow_terms(flow, exact)["landmark"], 0.0, atol=1e-9)
    assert all(model._flow_terms(flow, targets)["landmark"] > 0.1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_trains_a_step(variant):
    model = _model(variant=variant)
    inputs, targets = smooth_batch()
    before = snapshot(model.recnet.trainable_variables)
    logs = {name: float(value) for name, value in model.train_step((inputs, targets)).items()}
    assert all(np.isfinite(value) for value in logs.values())
    assert all(changed(before, model.recnet.trainable_variables))
    assert (model.warpnet is None) == (variant in ("no_warp", "no_guide"))
    # g_total is the weighted sum of the optimised terms; -F drops the flow terms from it.
    terms = ["l2", "adv_global", "adv_local"]
    if variant in ("full", "random_guide"):
        terms += ["landmark", "tv"]
    expected = sum(DEFAULT_LOSS_WEIGHTS[term] * logs[term] for term in terms)
    assert logs["g_total"] == pytest.approx(expected, rel=1e-5)
    if variant == "no_flow_loss":
        assert logs["landmark"] > 0  # still reported: the ablation's misalignment stays visible
    if model.warpnet is None:
        assert "landmark" not in logs and "tv" not in logs  # nothing to align, nothing reported
        np.testing.assert_array_equal(model(inputs)["warped_guide"], inputs["guide"])


def test_no_guide_variant_ignores_the_guide():
    model = _model(variant="no_guide")
    inputs, _ = smooth_batch()
    restored = model(inputs)["restored"]
    other = model({**inputs, "guide": np.zeros_like(inputs["guide"])})["restored"]
    np.testing.assert_array_equal(restored, other)


def test_random_guide_pairs_each_sample_with_the_next_guide():
    model = _model(variant="random_guide")
    inputs, targets = smooth_batch()
    paired_inputs, paired_targets = model._pair_guides(inputs, targets)
    np.testing.assert_array_equal(paired_inputs["guide"][1], inputs["guide"][0])
    np.testing.assert_array_equal(
        paired_targets["guide_landmarks"][0], targets["guide_landmarks"][1]
    )
    np.testing.assert_array_equal(paired_inputs["degraded"], inputs["degraded"])
    single = ({k: v[:1] for k, v in inputs.items()}, {k: v[:1] for k, v in targets.items()})
    with pytest.raises(BadConfigError, match="batch of at least 2"):
        model.train_step(single)


def test_warp_pretraining_then_joint_fit_on_a_fixed_batch():
    """§4.1 schedule on one batch: WarpNet alone, then everything, as `gfrnet-train` runs it."""
    model = _model(lr=2e-3)
    model.phase = "warp"
    data = tf.data.Dataset.from_tensors(smooth_batch()).repeat()
    others = [
        v
        for name in ("recnet", "global_discriminator", "local_discriminator")
        for v in getattr(model, name).variables
    ]
    others_before, warp_before = snapshot(others), snapshot(model.warpnet.trainable_variables)
    warp = model.fit(data, epochs=2, steps_per_epoch=3, verbose=0).history
    assert not any(changed(others_before, others))
    assert all(changed(warp_before, model.warpnet.trainable_variables))
    assert set(warp) == {"landmark", "tv", "g_total"}  # only the flow loss runs
    assert warp["landmark"][1] < warp["landmark"][0]
    assert warp["g_total"][0] == pytest.approx(10 * warp["landmark"][0] + warp["tv"][0], rel=1e-5)

    # The setter must drop the traced warp step: a stale one would leave l2 at 0.
    model.phase = "joint"
    joint = model.fit(data, epochs=4, steps_per_epoch=8, verbose=0).history
    # No VGG, no parts, no symmetry term (weight 0).
    assert set(joint) == set(TRACKED) - {"perceptual", "adv_parts", "d_parts", "flow_symmetry"}
    assert joint["l2"][-1] < 0.5 * joint["l2"][0]


def test_reconstruction_phase_trains_the_generator_on_its_terms_without_the_gan():
    """The warm-up: WarpNet and RecNet step on l2 + the flow loss; no discriminator runs or
    steps, and g_total is exactly the weighted sum without the adversarial terms."""
    model = _model(lr=2e-3, part_discriminators=True, part_size=16)
    model.phase = "reconstruction"
    discriminators = [
        v
        for d in (model.global_discriminator, model.local_discriminator)
        for v in d.variables  # BatchNorm statistics too: a discriminator that ran would move them
    ] + [v for d in model.part_discriminators.values() for v in d.variables]
    generator = [*model.warpnet.trainable_variables, *model.recnet.trainable_variables]
    d_before, g_before = snapshot(discriminators), snapshot(generator)
    logs = model.train_step(smooth_batch())
    assert not any(changed(d_before, discriminators))
    assert all(changed(g_before, generator))
    assert float(logs["g_total"]) == pytest.approx(
        100 * float(logs["l2"]) + 10 * float(logs["landmark"]) + float(logs["tv"]), rel=1e-5
    )
    assert model.d_optimizer.iterations.numpy() == 0


def test_warp_phase_needs_a_flow_loss():
    for variant in ("no_flow_loss", "no_warp", "no_guide"):
        with pytest.raises(BadConfigError, match="no flow loss"):
            build_gfrnet({**TINY, "variant": variant}).phase = "warp"


def test_config_and_keras_file_round_trips_give_identical_outputs(tmp_path):
    model = _model(variant="full", loss_weights={"tv": 2.0}, part_discriminators=True, part_size=16)
    inputs, targets = smooth_batch()
    model.train_step((inputs, targets))  # move BN statistics away from their initial values
    expected = model(inputs)

    clone = config_round_trip(model)
    clone.build({"degraded": (None, SIZE, SIZE, 3), "guide": (None, SIZE, SIZE, 3)})
    clone.set_weights(model.get_weights())
    assert clone.loss_weights["tv"] == 2.0 and clone.variant == "full"
    assert set(clone.part_discriminators) == {"eye_left", "eye_right", "nose", "mouth"}

    loaded = keras_file_round_trip(model, tmp_path)
    for restored in (clone, loaded):
        outputs = restored(inputs)
        for key in ("restored", "warped_guide", "flow"):
            np.testing.assert_array_equal(outputs[key], expected[key])
    # The optimizers come back with their state, so training can resume from the file.
    for name in ("g_optimizer", "d_optimizer"):
        saved, reloaded = getattr(model, name).variables, getattr(loaded, name).variables
        assert len(saved) == len(reloaded) > 2 and int(getattr(loaded, name).iterations) == 1
        for a, b in zip(saved, reloaded):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_build_gfrnet_rejects_unknown_keys_and_builds_quietly_without_vgg_weights(caplog):
    with pytest.raises(BadConfigError, match="widht"):
        build_gfrnet({"widht": (8,)})
    with pytest.raises(BadConfigError, match="perceptual"):
        build_gfrnet({**TINY, "loss_weights": {"perceptul": 1.0}})
    with caplog.at_level(logging.INFO):
        model = build_gfrnet(TINY)
    assert model.perceptual_network is None
    # Loading a model to restore photos never needs VGG-Face: only training says it is off.
    assert "perceptual" not in caplog.text


def test_vgg_weights_switch_the_perceptual_term_on(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "vgg.npz",
        **{
            "conv1_1/kernel": rng.normal(0, 0.05, (3, 3, 3, 64)).astype(np.float32),
            "conv1_1/bias": np.zeros(64, np.float32),
        },
    )
    model = _model(vgg_face_weights=str(tmp_path / "vgg.npz"), perceptual_layer="conv1_1")
    inputs, targets = smooth_batch()
    logs = model.test_step((inputs, targets))  # inference mode: deterministic
    restored = model(inputs)["restored"]
    expected = np.mean(
        losses.perceptual_loss(model.perceptual_network, targets["target"], restored)
    )
    assert float(logs["perceptual"]) == pytest.approx(float(expected), rel=1e-5) and expected > 0
    assert model.perceptual_network.trainable_variables == []
    # Eq. 6's reconstruction loss, what §4.1's schedule watches, is the weighted sum of both.
    reconstruction = 100.0 * float(logs["l2"]) + 0.001 * float(logs["perceptual"])
    assert float(logs["reconstruction"]) == pytest.approx(reconstruction, rel=1e-5)
    assert set(logs) == JOINT | {"landmark", "tv", "perceptual"}


# Issue 14: only what runs is logged.
JOINT = {"l2", "adv_global", "adv_local", "reconstruction", "g_total", "d_global", "d_local"}


@pytest.mark.parametrize(
    "config, phase, expected",
    [
        ({}, "warp", {"landmark", "tv", "g_total"}),
        ({}, "reconstruction", {"l2", "reconstruction", "g_total", "landmark", "tv"}),
        ({}, "joint", JOINT | {"landmark", "tv"}),
        ({"variant": "no_guide"}, "joint", JOINT),
        (
            {"part_discriminators": True, "part_size": 16},
            "joint",
            JOINT | {"landmark", "tv", "adv_parts", "d_parts"},
        ),
    ],
)
def test_logged_terms_are_those_the_variant_and_phase_compute(config, phase, expected):
    model = _model(**config)
    model.phase = phase
    batch = smooth_batch()
    assert set(model.train_step(batch)) == expected
    assert set(model.test_step(batch)) == expected
    assert {metric.name for metric in model.metrics} == expected  # what fit resets and logs


def test_part_terms_are_averaged_over_the_four_parts():
    model = _model(part_discriminators=True, part_size=16)
    inputs, targets = smooth_batch()
    outputs = model(inputs)
    condition = model._condition(inputs)
    real = tf.concat([condition, targets["target"]], -1)
    fake = tf.concat([condition, outputs["restored"]], -1)
    real_parts, fake_parts = model._part_crops(real, targets), model._part_crops(fake, targets)
    per_part_d = [
        losses.discriminator_loss(d(real_parts[p]), d(fake_parts[p]))
        for p, d in model.part_discriminators.items()
    ]
    per_part_g = [
        losses.generator_adversarial_loss(d(fake_parts[p]))
        for p, d in model.part_discriminators.items()
    ]
    d_terms = model._discriminator_terms(inputs, targets, outputs["restored"], training=False)
    g_terms = model._generator_terms(inputs, targets, outputs, training=False)
    np.testing.assert_allclose(d_terms["d_parts"], np.mean(per_part_d, axis=0), rtol=1e-5)
    np.testing.assert_allclose(g_terms["adv_parts"], np.mean(per_part_g, axis=0), rtol=1e-5)


def test_mixed_precision_trains_with_float32_outputs(mixed_float16):
    model = build_gfrnet(TINY)
    model.compile(*[keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam()) for _ in "gd"])
    model.build_all((SIZE, SIZE))
    inputs, targets = smooth_batch()
    logs = model.train_step((inputs, targets))
    outputs = model(inputs)
    assert all(np.isfinite(float(v)) for v in logs.values()) and float(logs["l2"]) > 0
    assert {v.dtype for v in outputs.values()} == {tf.float32}


def test_build_all_needs_compiled_optimizers():
    with pytest.raises(BadConfigError, match="compile"):
        build_gfrnet(TINY).build_all((SIZE, SIZE))


def _one_step_on_one_and_two_replicas():
    """Worker (fresh process: logical devices are fixed when TF starts): one joint step from
    the same weights on one device and on two, same global batch of 2."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    keras.utils.set_random_seed(0)
    # Instance norm and no dropout: nothing depends on how the batch is split.
    config = {**TINY, "norm": "instance", "dropout": 0.0}
    data = tf.data.Dataset.from_tensor_slices(smooth_batch()).batch(BATCH)
    initial, results = None, []
    for strategy in (
        tf.distribute.get_strategy(),
        tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
    ):
        with strategy.scope():
            model = build_gfrnet(config)
            # Plain SGD: a gradient scaled by the replica count would show in the weights
            # (Adam's normalisation would hide it).
            model.compile(keras.optimizers.SGD(0.01), keras.optimizers.SGD(0.01))
            model.build_all((SIZE, SIZE))
        initial = model.get_weights() if initial is None else initial
        model.set_weights(initial)
        # `strategy.run` eagerly: the same replicated step `fit` runs, without its tracing cost.
        step_input = next(iter(strategy.experimental_distribute_dataset(data)))
        logs = strategy.run(model.train_step, args=(step_input,))
        logs = {name: float(strategy.reduce("MEAN", value, None)) for name, value in logs.items()}
        results.append({"logs": logs, "weights": [w.tolist() for w in model.get_weights()]})
    return [w.tolist() for w in initial], results


@pytest.mark.slow
def test_two_replicas_step_like_one_device_on_the_same_global_batch():
    process = run_checkout(sys.executable, __file__, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    initial, (one, two) = json.loads(process.stdout.strip().splitlines()[-1])
    assert set(two["logs"]) == set(one["logs"])
    for name in one["logs"]:
        np.testing.assert_allclose(two["logs"][name], one["logs"][name], rtol=1e-4, atol=1e-6)
    assert sum(not np.allclose(a, b) for a, b in zip(initial, one["weights"])) > len(initial) // 2
    for a, b in zip(one["weights"], two["weights"]):  # a replica-count scaling bug moves them ~1
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":
    print(json.dumps(_one_step_on_one_and_two_replicas()))
