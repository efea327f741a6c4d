"""Mixed precision: float32 where it matters, a step close to float32, loss scales that
survive saving.

Runs `mixed_float16` on CPU (slow there, but numerically the same policy a GPU runs), on a
tiny 32 px GFRNet with the perceptual term on a random VGG-Face, dropout off so that the
float32 and mixed steps see the same network.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.models.vgg_face import RANDOM_WEIGHTS
from support import TINY, dtype_policy, keras_file_round_trip

SIZE = 32
MODEL = {
    **TINY,
    "discriminator_widths": (8, 16, 16, 16),
    "local_size": 32,
    "dropout": 0.0,
    "vgg_face_weights": RANDOM_WEIGHTS,
    "perceptual_layer": "conv2_2",
}


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
    for name in (
        "l2",
        "adv_global",
        "adv_local",
        "perceptual",
        "landmark",
        "tv",
        "d_global",
        "d_local",
    ):
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
