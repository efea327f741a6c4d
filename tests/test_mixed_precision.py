"""Mixed precision: float32 where it matters, a step close to float32, loss scales that
survive saving, float32 checkpoints that train, resume, load and export under any policy.

Runs `mixed_float16` and `mixed_bfloat16` on CPU (float16 is slow there, and bf16 too on a
CPU without bf16 instructions, but numerically they are the policies a GPU or a bf16 CPU
runs), on a tiny 32 px GFRNet with the perceptual term on a random VGG-Face, dropout off so
that the float32 and mixed steps see the same network. Which policy runs on which device is
`test_precision.py`.
"""

import json

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf import precision
from gfrnet_tf.configs import load_config
from gfrnet_tf.data.images import to_uint8
from gfrnet_tf.errors import BadModelFileError
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.loading import load_gfrnet, load_trained
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.models.vgg_face import RANDOM_WEIGHTS
from gfrnet_tf.ops import warp_image
from gfrnet_tf.sample import Split, write_sample_dataset
from gfrnet_tf.training import fit
from support import SHALLOW, TINY, dtype_policy, keras_file_round_trip

SIZE = 32
MODEL = {
    **TINY,
    "discriminator_widths": (8, 16, 16, 16),
    "local_size": 32,
    "dropout": 0.0,
    "vgg_face_weights": RANDOM_WEIGHTS,
    "perceptual_layer": "conv2_2",
}
LOSS_TERMS = (
    "l2",
    "adv_global",
    "adv_local",
    "perceptual",
    "landmark",
    "tv",
    "d_global",
    "d_local",
)
SHALLOW_WIDTHS = {key: SHALLOW[key] for key in ("widths", "discriminator_widths")}
BF16 = precision.BFLOAT16


def _batch(seed=0, batch=2):
    rng = np.random.default_rng(seed)
    image = lambda: rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)  # noqa: E731
    points = lambda: rng.uniform(8, SIZE - 9, (batch, 68, 2)).astype(np.float32)  # noqa: E731
    return (
        {"degraded": image(), "guide": image()},
        {"target": image(), "landmarks": points(), "guide_landmarks": points()},
    )


def _model(optimizer, loss_scaled, initial_scale=2.0**15):
    """A built tiny GFRNet; `loss_scaled` wraps both optimizers as training does under mixed
    precision."""
    keras.utils.set_random_seed(1)
    model = build_gfrnet(MODEL)

    def make():
        inner = optimizer()
        if not loss_scaled:
            return inner
        return keras.optimizers.LossScaleOptimizer(inner, initial_scale=initial_scale)

    model.compile(g_optimizer=make(), d_optimizer=make())
    model.build_all((SIZE, SIZE))
    return model


def _sgd():
    # SGD: the update is proportional to the gradient, so comparing updates compares
    # gradients (Adam's first step is lr * sign(g) whatever the precision).
    return keras.optimizers.SGD(0.1)


def test_mixed_model_computes_in_float16_and_returns_float32(mixed_float16):
    model = _model(_sgd, loss_scaled=True)
    assert model.recnet.compute_dtype == "float16"
    assert model.warpnet.compute_dtype == "float16"
    assert model.perceptual_network.compute_dtype == "float16"
    assert model.recnet.body.decoder[-1].compute_dtype == "float32"  # output layers
    assert all(v.dtype == "float32" for v in model.weights)
    inputs, targets = _batch()
    outputs = model(inputs, training=True)
    assert {name: value.dtype for name, value in outputs.items()} == {
        "restored": tf.float32,
        "warped_guide": tf.float32,
        "flow": tf.float32,
    }
    # The flow leaves WarpNet in float32: its last layer computes in float32.
    flow = model.warpnet(tf.concat([inputs["degraded"], inputs["guide"]], -1))
    assert flow.dtype == tf.float32
    terms = model._generator_terms(inputs, targets, outputs, training=True)
    assert {value.dtype for value in terms.values()} == {tf.float32}


def _one_step(model, batch):
    before = [w.numpy() for w in model.trainable_weights]
    logs = model.train_step(tf.nest.map_structure(tf.constant, batch))
    after = [w.numpy() for w in model.trainable_weights]
    return {name: float(value) for name, value in logs.items()}, [
        a - b for a, b in zip(after, before)
    ]


def test_mixed_precision_step_is_close_to_a_float32_step():
    batch = _batch()
    reference = _model(_sgd, loss_scaled=False)
    initial = reference.get_weights()
    fp32_logs, fp32_updates = _one_step(reference, batch)
    with dtype_policy("mixed_float16"):
        # Gradients reach ~100 at loss scale 1 (the landmark term, weight 10), so Keras'
        # default first scale 2**15 -- even 2**8 -- overflows float16 and the optimizer skips
        # the step and halves the scale (dynamic loss scaling, as intended: a run loses its
        # first ~10 steps). Scale 16 fits and makes the first step a real one to compare.
        mixed = _model(_sgd, loss_scaled=True, initial_scale=16.0)
        mixed.set_weights(initial)
        mixed_logs, mixed_updates = _one_step(mixed, batch)
        assert float(mixed.g_optimizer.dynamic_scale.numpy()) == 16.0  # the step was applied
    # float16 keeps 11 significant bits (relative rounding 2**-11 = 4.9e-4 per operation);
    # accumulated over the ~20 layers of a step the losses stay within 1% (measured: 1e-3),
    # far from the loss scale's 2**15 had the optimizer not divided it out again.
    for name in LOSS_TERMS:
        np.testing.assert_allclose(mixed_logs[name], fp32_logs[name], rtol=1e-2, err_msg=name)
    # The updates (lr * gradient) of every variable point the same way and have the same
    # size to 5% (measured: cosine > 0.999, norm ratio within 1%).
    for fp32_update, mixed_update in zip(fp32_updates, mixed_updates):
        a, b = fp32_update.ravel(), mixed_update.ravel()
        if np.linalg.norm(a) < 1e-6:  # a variable without gradient
            continue
        cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        assert cosine > 0.99
        assert abs(np.linalg.norm(b) / np.linalg.norm(a) - 1.0) < 0.05


def _scales(model):
    return [
        (
            float(o.dynamic_scale.numpy()),
            int(o.iterations.numpy()),
            int(o.inner_optimizer.iterations.numpy()),
        )
        for o in (model.g_optimizer, model.d_optimizer)
    ]


def _trained_mixed_model():
    model = _model(keras.optimizers.Adam, loss_scaled=True)
    model.train_step(tf.nest.map_structure(tf.constant, _batch()))
    # Distinct, non-default scales: a loader that rebuilt fresh optimizers would give 2**15.
    model.g_optimizer.dynamic_scale.assign(1024.0)
    model.d_optimizer.dynamic_scale.assign(64.0)
    return model


def _next_step_logs(model):
    """The losses of one more step alone (the trackers would average it with earlier ones)."""
    for tracker in model.metrics:
        tracker.reset_state()
    logs = model.train_step(tf.nest.map_structure(tf.constant, _batch(seed=1)))
    return {name: float(value) for name, value in logs.items()}


@pytest.mark.slow
def test_loss_scale_optimizers_survive_a_keras_file_round_trip(mixed_float16, tmp_path):
    model = _trained_mixed_model()
    loaded = keras_file_round_trip(model, tmp_path, "mixed.keras")
    for optimizer in (loaded.g_optimizer, loaded.d_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert isinstance(optimizer.inner_optimizer, keras.optimizers.Adam)
    assert loaded.recnet.compute_dtype == "float16"
    assert _scales(loaded) == _scales(model)
    assert _next_step_logs(loaded) == pytest.approx(_next_step_logs(model), rel=1e-6)


@pytest.mark.slow
def test_loss_scale_state_survives_the_weights_checkpoint_used_to_resume(mixed_float16, tmp_path):
    # StepCheckpoint and BackupAndRestore both go through save_weights / load_weights.
    model = _trained_mixed_model()
    path = str(tmp_path / "step-00000001.weights.h5")
    model.save_weights(path)
    resumed = _model(keras.optimizers.Adam, loss_scaled=True)
    assert _scales(resumed) != _scales(model)
    resumed.load_weights(path)
    assert _scales(resumed) == _scales(model)
    assert _next_step_logs(resumed) == pytest.approx(_next_step_logs(model), rel=1e-6)


# ------------------------------------------------------------------ bf16
def test_under_bf16_the_networks_compute_in_bf16_and_the_islands_stay_float32():
    with precision.policy_scope(BF16):
        model = _model(_sgd, loss_scaled=False)
    for network in (model.recnet, model.warpnet, model.perceptual_network):
        assert network.compute_dtype == "bfloat16"
    assert model.global_discriminator.blocks[1].conv.compute_dtype == "bfloat16"
    for output_layer in (
        model.recnet.body.decoder[-1],
        model.warpnet.body.decoder[-1],
        model.global_discriminator.blocks[-1],
    ):
        assert output_layer.compute_dtype == "float32"
    # GFRNet itself stays float32, so the images reach the warp unrounded.
    assert model.compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    inputs, targets = _batch()
    outputs = model(inputs, training=False)
    assert {k: v.dtype for k, v in outputs.items()} == dict.fromkeys(outputs, tf.float32)
    # The warp ran in float32 on the float32 guide: the float32 warp of the returned flow.
    np.testing.assert_array_equal(
        outputs["warped_guide"], warp_image(inputs["guide"], outputs["flow"])
    )
    terms = model._generator_terms(inputs, targets, outputs, training=False)
    terms.update(model._discriminator_terms(inputs, targets, outputs["restored"], False))
    assert {value.dtype for value in terms.values()} == {tf.float32}
    logs = model.train_step(tf.nest.map_structure(tf.constant, (inputs, targets)))
    assert {value.dtype for value in logs.values()} == {tf.float32}


@pytest.mark.slow
def test_a_bf16_step_is_close_to_a_float32_step():
    batch = _batch()
    reference = _model(_sgd, loss_scaled=False)
    initial = reference.get_weights()
    fp32_logs, fp32_updates = _one_step(reference, batch)
    with precision.policy_scope(BF16):  # bf16 needs no loss scale
        bf16 = _model(_sgd, loss_scaled=False)
    bf16.set_weights(initial)
    bf16_logs, bf16_updates = _one_step(bf16, batch)
    # bf16 keeps 8 significant bits: each rounding of an activation or weight is off by up to
    # 2**-9 = 2e-3 relative; the products accumulate in float32 and the losses are float32,
    # so a loss inherits a few such errors, not one per multiply-add. Measured over 5 seeds:
    # at most 2.8e-3 relative over the eight terms (the perceptual term, whose VGG-Face is
    # the deepest network). 1e-2 is 3.5x that; float16's 11 bits gave 1e-3 here.
    for name in LOSS_TERMS:
        np.testing.assert_allclose(bf16_logs[name], fp32_logs[name], rtol=1e-2, err_msg=name)
    # Gradients (lr * gradient): each network's whole update points the same way and has the
    # same size. Measured over 5 seeds: cosine >= 0.964 (RecNet), norm ratio within 4 %.
    # Single variables scatter more: at 32 px the innermost layers see 2x2 or 1x1 maps, and
    # BatchNorm over 8 values divides bf16's rounding by a tiny spread (measured: one RecNet
    # beta at cosine 0.785, most variables above 0.95). The bounds: 0.94 and 8 % per
    # network, 0.5 per variable (still the same direction, far from unrelated vectors' 0).
    networks = [w.path.split("/")[1] for w in reference.trainable_weights]
    for network in set(networks):
        a, b = (
            np.concatenate([u.ravel() for n, u in zip(networks, updates) if n == network])
            for updates in (fp32_updates, bf16_updates)
        )
        assert _cosine(a, b) > 0.94, network
        assert abs(np.linalg.norm(b) / np.linalg.norm(a) - 1.0) < 0.08, network
    for fp32_update, bf16_update in zip(fp32_updates, bf16_updates):
        if np.linalg.norm(fp32_update) > 1e-6:  # variables without gradient are skipped
            assert _cosine(fp32_update.ravel(), bf16_update.ravel()) > 0.5


def _cosine(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


# ------------------------------------------------------------------ checkpoints across policies
def _run_config(precision_name, epochs):
    config = load_config("smoke")
    config.input.image_size = SIZE
    # SHALLOW's depth 3: tracing two training steps and a validation step of each policy
    # costs a third less than at TINY's depth 5; the dtypes checked are the same layer kinds.
    config.model.update({**MODEL, **SHALLOW_WIDTHS, "vgg_face_weights": ""})
    config.train.update(
        dict(
            warp_pretrain_epochs=0,
            epochs=epochs,
            steps_per_epoch=2,
            checkpoint_every=2,
            summary_every=2,
            precision=precision_name,
        )
    )
    return config


def _stored_dtypes(path):
    dtypes = set()
    with h5py.File(path, "r") as stored:
        stored.visititems(
            lambda name, item: (
                dtypes.add(str(item.dtype))
                if isinstance(item, h5py.Dataset) and item.dtype.kind == "f"
                else None
            )
        )
    return dtypes


def _restored_uint8(model, inputs):
    return to_uint8(model(inputs, training=False)["restored"]).numpy().astype(int)


@pytest.mark.slow
def test_train_in_bf16_resume_in_float32_then_load_and_export_either_way(tmp_path, monkeypatch):
    monkeypatch.setenv(precision.CPU_BF16_OVERRIDE, "1")  # bf16 here whatever this CPU has
    dataset = write_sample_dataset(
        tmp_path / "data", SIZE, (Split("train", 4, 1, 1), Split("val", 2, 1, 2))
    )
    workdir = tmp_path / "run"
    first = fit.train(_run_config(BF16, epochs=1), workdir, dataset, verbose=0)
    assert first.recnet.compute_dtype == "bfloat16"
    assert not isinstance(first.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert keras.mixed_precision.global_policy().name == "float32"  # nothing leaks out
    assert json.loads((workdir / "config.json").read_text())["train"]["precision"] == BF16
    bf16_checkpoint = workdir / "checkpoints" / "step-00000002.weights.h5"
    assert _stored_dtypes(bf16_checkpoint) <= {"float32", "int64"}
    assert _stored_dtypes(bf16_checkpoint) & {"float32"}

    # The same workdir resumed in float32: it continues at step 2 with the bf16 run's weights
    # and Adam state, and its checkpoints are float32 as before.
    resumed = fit.train(_run_config(precision.FLOAT32, epochs=2), workdir, dataset, verbose=0)
    assert resumed.recnet.compute_dtype == "float32"
    assert int(resumed.g_optimizer.iterations.numpy()) == 4
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir())[-1] == (
        "step-00000004.weights.h5"
    )

    # Any checkpoint loads under any policy, and a .keras file too: same float32 weights.
    inputs, _ = _batch(seed=3)
    fp32 = load_trained(bf16_checkpoint).model
    bf16 = load_trained(bf16_checkpoint, BF16).model
    assert (fp32.recnet.compute_dtype, bf16.recnet.compute_dtype) == ("float32", "bfloat16")
    for a, b in zip(fp32.get_weights(), first.get_weights()):
        np.testing.assert_array_equal(a, b)
    keras_file = tmp_path / "bf16.keras"
    first.save(keras_file)
    from_file = load_gfrnet(keras_file, precision.FLOAT32).model
    assert from_file.recnet.compute_dtype == "float32"
    assert from_file.recnet.body.decoder[-1].compute_dtype == "float32"
    reference = _restored_uint8(fp32, inputs)
    np.testing.assert_array_equal(_restored_uint8(from_file, inputs), reference)
    # bf16 inference of the same weights: within a few grey levels of float32. A barely
    # trained tiny model's outputs stay near grey, where bf16's relative rounding is small in
    # grey levels: measured at most 1 level, mean 0.002-0.003 (3 seeds of its weights). The
    # bound allows for the wider range of a trained model's outputs (the demo's model:
    # README, "Precision").
    difference = np.abs(_restored_uint8(bf16, inputs) - reference)
    assert difference.max() <= 4 and difference.mean() < 1.0

    # A bf16 SavedModel (asked for: exports are float32 by default) serves uint8 as the
    # float32 Keras model restores, within the same few grey levels.
    path = export_savedmodel(bf16, tmp_path / "export", SIZE, version=1)
    serve = load_trained(path).model.signatures["serving_default"]
    uint8 = {k: tf.constant(to_uint8(v)) for k, v in inputs.items()}
    served = serve(**uint8)
    assert (served["restored"].dtype, served["flow"].dtype) == (tf.uint8, tf.float32)
    difference = np.abs(served["restored"].numpy().astype(int) - reference)
    assert difference.max() <= 4 and difference.mean() < 1.0
    with pytest.raises(BadModelFileError, match="computes in the precision it was exported"):
        load_trained(path, BF16)
