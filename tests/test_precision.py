"""Compute precision: the policy per device kind, bf16 detection, the float32 islands under
bf16, a bf16 step close to a float32 step, and float32 checkpoints that train, resume, load
and export under any policy.

bf16 runs on this CPU whether or not it has bf16 instructions (TensorFlow emulates them:
slower, numerically the same rounding), on tiny 32 px models with the perceptual term on a
random VGG-Face and dropout off, so float32 and bf16 steps see the same network.
"""

import json

import h5py
import keras
import ml_collections
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf import precision
from gfrnet_tf.configs import load_config
from gfrnet_tf.data.images import to_uint8
from gfrnet_tf.errors import BadConfigError, BadModelFileError
from gfrnet_tf.export import export_savedmodel
from gfrnet_tf.loading import load_gfrnet, load_trained
from gfrnet_tf.models.gfrnet import build_gfrnet
from gfrnet_tf.models.vgg_face import RANDOM_WEIGHTS
from gfrnet_tf.ops import warp_image
from gfrnet_tf.sample import Split, write_sample_dataset
from gfrnet_tf.training import fit

SIZE = 32
MODEL = {
    "widths": (8, 16, 16, 16, 16),
    "discriminator_widths": (8, 16, 16, 16),
    "local_size": 32,
    "dropout": 0.0,
    "vgg_face_weights": RANDOM_WEIGHTS,
    "perceptual_layer": "conv2_2",
}
BF16 = precision.BFLOAT16
# This VM's own flags line (AMD EPYC, AVX2, no AVX-512) and two that have bf16.
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx f16c fma avx2 sha_ni vaes\n"
ZEN4 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16 vaes\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16 svebf16\nCPU part\t: 0xd40\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd fphp asimdhp asimddp\n"


# ------------------------------------------------------------------ the policy per device
@pytest.mark.parametrize(
    "device, support, expected",
    [
        ("CPU", (True, "avx512_bf16"), BF16),
        ("CPU", (False, "no avx512_bf16"), precision.FLOAT32),
        ("GPU", (True, "compute capability 8.0"), BF16),
        ("GPU", (False, "compute capability 7.5"), precision.FLOAT32),
        ("TPU", None, BF16),
    ],
)
def test_bf16_runs_where_the_device_has_it_and_float32_elsewhere_saying_why(
    device, support, expected
):
    chosen = precision.choose(BF16, device, support)
    assert (chosen.requested, chosen.policy, chosen.device) == (BF16, expected, device)
    assert not chosen.needs_loss_scaling  # bf16 has float32's range: never a loss scale
    if expected == precision.FLOAT32:
        assert "no native bf16" in chosen.note and support[1] in chosen.note
        assert "computing in float32" in chosen.describe()
    assert "\n" not in chosen.describe()


@pytest.mark.parametrize("device", precision.DEVICE_KINDS)
def test_float32_is_float32_on_every_device(device):
    chosen = precision.choose(precision.FLOAT32, device, (False, "-"))
    assert (chosen.policy, chosen.note, chosen.needs_loss_scaling) == ("float32", "", False)


def test_float16_runs_on_gpus_with_loss_scaling_and_is_refused_elsewhere_in_one_line():
    chosen = precision.choose(precision.FLOAT16, "GPU")
    assert chosen.policy == precision.FLOAT16 and chosen.needs_loss_scaling
    for device, reason in (("CPU", "needs a GPU"), ("TPU", "TPUs compute in bfloat16")):
        with pytest.raises(BadConfigError) as raised:
            precision.choose(precision.FLOAT16, device, source="--precision")
        assert str(raised.value).startswith(f"--precision: ")
        assert reason in str(raised.value) and "\n" not in str(raised.value)


def test_the_old_mixed_precision_switch_keeps_its_meaning():
    assert precision.legacy_mixed_precision("GPU").policy == precision.FLOAT16
    on_cpu = precision.legacy_mixed_precision("CPU")
    assert on_cpu.policy == precision.FLOAT32 and "ignored" in on_cpu.note
    train = load_config("smoke").train
    assert fit.choose_precision(train, mixed_precision=True).policy == precision.FLOAT32
    train.precision = BF16
    with pytest.raises(BadConfigError, match="use --precision alone"):
        fit.choose_precision(train, mixed_precision=True)


def test_unknown_precisions_are_config_errors_and_old_configs_mean_float32():
    train = load_config("smoke").train.to_dict()
    train["precision"] = "bfloat16"  # a config.json may hold anything
    with pytest.raises(BadConfigError) as raised:
        fit.check_train_config(ml_collections.ConfigDict(train))
    assert str(raised.value).startswith("config.train.precision: 'bfloat16' is not one of")
    del train["precision"]  # written before the key existed
    assert fit.train_precision(ml_collections.ConfigDict(train)) == precision.FLOAT32
    assert {load_config(name).train.precision for name in ("paper", "recommended")} == {
        "float32"
    }


@pytest.mark.parametrize(
    "cpuinfo, native, shown",
    [
        (AVX2_ONLY, False, "no avx512_bf16 / amx_bf16 / bf16 in /proc/cpuinfo"),
        (ZEN4, True, "/proc/cpuinfo: avx512_bf16"),
        (SAPPHIRE_RAPIDS, True, "/proc/cpuinfo: amx_bf16"),
        (GRAVITON3, True, "/proc/cpuinfo: bf16"),
        (GRAVITON2, False, "no avx512_bf16"),
    ],
)
def test_cpu_bf16_is_detected_from_the_cpu_flags(cpuinfo, native, shown):
    found, how = precision.cpu_bf16_support(cpuinfo, environ={})
    assert found is native and how.startswith(shown)


def test_the_detection_can_be_overridden_for_a_vm_that_hides_the_host_flags():
    override = precision.CPU_BF16_OVERRIDE
    assert precision.cpu_bf16_support(AVX2_ONLY, {override: "1"}) == (True, f"{override}=1")
    assert precision.cpu_bf16_support(ZEN4, {override: "0"}) == (False, f"{override}=0")
    assert precision.cpu_bf16_support(ZEN4, {override: "yes"})[0]  # not 0/1: detect


def test_this_machine_is_detected_from_its_own_cpuinfo(monkeypatch):
    monkeypatch.delenv(precision.CPU_BF16_OVERRIDE, raising=False)
    with open(precision.CPUINFO) as stream:
        flags = stream.read().split()
    native, _ = precision.cpu_bf16_support()
    assert native == bool({"avx512_bf16", "amx_bf16", "bf16"} & set(flags))


def test_policy_scope_builds_under_the_policy_and_restores_the_previous_one():
    with precision.policy_scope(BF16):
        layer = keras.layers.Dense(2)
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError), precision.policy_scope(BF16):
        raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"


# ------------------------------------------------------------------ bf16 numerics
def _batch(seed=0, batch=2):
    rng = np.random.default_rng(seed)
    image = lambda: rng.uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype(np.float32)  # noqa: E731
    points = lambda: rng.uniform(8, SIZE - 9, (batch, 68, 2)).astype(np.float32)  # noqa: E731
    return (
        {"degraded": image(), "guide": image()},
        {"target": image(), "landmarks": points(), "guide_landmarks": points()},
    )


def _model(policy, optimizer=lambda: keras.optimizers.SGD(0.1)):
    """A built tiny GFRNet under `policy`, its optimizers as the training code wraps them.
    SGD: the update is lr * gradient, so comparing updates compares gradients."""
    keras.utils.set_random_seed(1)
    with precision.policy_scope(policy):
        model = build_gfrnet(MODEL)
        scaled = precision.needs_loss_scaling(policy)
        wrap = keras.optimizers.LossScaleOptimizer if scaled else lambda o: o
        model.compile(g_optimizer=wrap(optimizer()), d_optimizer=wrap(optimizer()))
        model.build_all((SIZE, SIZE))
    return model


def test_under_bf16_the_networks_compute_in_bf16_and_the_islands_stay_float32():
    model = _model(BF16)
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
    # No loss scaling: a plain optimizer, whose scale_loss is the identity.
    assert not isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer)
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


def _one_step(model, batch):
    before = [w.numpy() for w in model.trainable_weights]
    logs = model.train_step(tf.nest.map_structure(tf.constant, batch))
    after = [w.numpy() for w in model.trainable_weights]
    return {name: float(value) for name, value in logs.items()}, [
        a - b for a, b in zip(after, before)
    ]


@pytest.mark.slow
def test_a_bf16_step_is_close_to_a_float32_step():
    batch = _batch()
    reference = _model(precision.FLOAT32)
    initial = reference.get_weights()
    fp32_logs, fp32_updates = _one_step(reference, batch)
    bf16 = _model(BF16)
    bf16.set_weights(initial)  # the same seed gives them already: made explicit
    bf16_logs, bf16_updates = _one_step(bf16, batch)
    # bf16 keeps 8 significant bits: each rounding of an activation or weight is off by up to
    # 2**-9 = 2e-3 relative; the products accumulate in float32 and the losses are float32,
    # so a loss inherits a few such errors, not one per multiply-add. Measured over 5 seeds:
    # at most 2.8e-3 relative over the eight terms (the perceptual term, whose VGG-Face is
    # the deepest network). 1e-2 is 3.5x that; float16's 11 bits gave 1e-3 here.
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
    config.model.update({**MODEL, "vgg_face_weights": ""})
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
            lambda name, item: dtypes.add(str(item.dtype))
            if isinstance(item, h5py.Dataset) and item.dtype.kind == "f"
            else None
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
    # bf16 inference of the same weights: within a few grey levels of float32 (8 bits of
    # mantissa through RecNet; measured: at most 2, mean 0.2 on these random inputs).
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
