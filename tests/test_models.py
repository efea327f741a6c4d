"""WarpNet, RecNet and PatchDiscriminator: shapes, ranges, skips, dropout, config and files."""

import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.models import PatchDiscriminator, RecNet, WarpNet
from gfrnet_tf.models.discriminator import PATCHGAN_WIDTHS
from gfrnet_tf.models.layers import (
    OFFICIAL_WARPNET_WIDTHS,
    PIX2PIX_WIDTHS,
    ConvBlock,
    inference_dropout,
)
from gfrnet_tf.ops import identity_grid
from support import config_round_trip, keras_file_round_trip

TINY = (4, 8, 8, 8, 8)  # depth 5: 32x32 -> 1x1 bottleneck
TINY_D = (4, 8, 8, 8)


def _inputs(size=32, channels=6, batch=2, seed=0):
    return (
        np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, channels)).astype("float32")
    )


def _zero_block(block):
    """Set a ConvBlock's convolution to zero, so its pre-activation output is exactly 0."""
    for variable in block.conv.weights:
        variable.assign(np.zeros(variable.shape, "float32"))


# --- parameter counts by a formula over the widths (independent of Keras' bookkeeping) ---


def _conv_params(cin, cout, norm):
    norm_params = {"batch": 4 * cout, "instance": 2 * cout, "none": 0}[norm]
    bias = 0 if norm == "batch" else cout
    return 16 * cin * cout + bias + norm_params


def _generator_params(in_channels, widths, out_channels, norm, skips):
    depth = len(widths)
    total, cin = 0, in_channels
    for i, width in enumerate(widths):
        total += _conv_params(cin, width, norm if 0 < i < depth - 1 else "none")
        cin = width
    for j, width in enumerate(list(reversed(widths[:-1])) + [out_channels]):
        last = j == depth - 1
        total += _conv_params(cin, width, "none" if last else norm)
        cin = width * 2 if skips and not last else width
    return total


def _discriminator_params(in_channels, widths, norm):
    total, cin = 0, in_channels
    for i, width in enumerate(widths):
        total += _conv_params(cin, width, "none" if i == 0 else norm)
        cin = width
    return total + _conv_params(cin, 1, "none")


def test_paper_config_parameter_counts_match_the_formula():
    warpnet, recnet, disc = WarpNet(), RecNet(), PatchDiscriminator()
    warpnet.build((None, 256, 256, 6))
    recnet.build((None, 256, 256, 6))
    disc.build((None, 256, 256, 9))
    assert warpnet.count_params() == _generator_params(6, PIX2PIX_WIDTHS, 2, "batch", False)
    assert recnet.count_params() == _generator_params(6, PIX2PIX_WIDTHS, 3, "batch", True)
    assert disc.count_params() == _discriminator_params(9, PATCHGAN_WIDTHS, "batch")


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_tiny_parameter_counts_match_the_formula_for_other_norms(norm):
    recnet = RecNet(TINY, norm=norm)
    recnet.build((None, 32, 32, 5))
    disc = PatchDiscriminator(TINY_D, norm=norm)
    disc.build((None, 32, 32, 9))
    assert recnet.count_params() == _generator_params(5, TINY, 3, norm, True)
    assert disc.count_params() == _discriminator_params(9, TINY_D, norm)


# --- shapes and ranges ---


@pytest.mark.parametrize("size,widths", [(32, TINY), (64, TINY + (8,))])
def test_generator_shapes(size, widths):
    x = _inputs(size)
    assert WarpNet(widths)(x).shape == (2, size, size, 2)
    assert RecNet(widths)(x).shape == (2, size, size, 3)
    assert RecNet(widths, out_channels=1)(x[..., :3]).shape == (2, size, size, 1)


@pytest.mark.parametrize("size", [32, 64, 256])
def test_discriminator_logit_map_follows_pix2pix_size_rule(size):
    disc = PatchDiscriminator((2, 2, 2, 2))
    # pix2pix: three stride-2 convs (size/8), then two stride-1 4x4 convs with padding 1 (-1 each).
    expected = (1, size // 8 - 2, size // 8 - 2, 1)
    assert tuple(disc.compute_output_shape((1, size, size, 9))) == expected
    if size <= 64:
        assert disc(_inputs(size, 9, batch=1)).shape == expected


def test_discriminator_receptive_field_is_70_pixels():
    disc = PatchDiscriminator((2, 2, 2, 2), norm="none")
    x = tf.constant(_inputs(96, 1, batch=1))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = disc(x)[0, 5, 5, 0]
    grad = np.abs(tape.gradient(logit, x).numpy()[0, ..., 0])
    rows, cols = np.nonzero(grad)
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_generators_trace_once_for_any_divisible_size():
    warpnet, recnet = WarpNet((4, 8, 8)), RecNet((4, 8, 8))
    warpnet.build((None, None, None, 6))
    recnet.build((None, None, None, 6))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 6])])
    def forward(x):
        return warpnet(x), recnet(x)

    for height, width in [(8, 16), (24, 8)]:
        x = _inputs(8, batch=1)
        x = tf.image.resize(x, (height, width))
        flow, restored = forward(x)
        assert flow.shape == (1, height, width, 2) and restored.shape == (1, height, width, 3)
        np.testing.assert_allclose(flow, warpnet(x), atol=1e-6)
    assert forward.experimental_get_tracing_count() == 1


def test_encoder_halves_the_resolution_exactly_depth_times():
    model = RecNet(TINY)
    x = _inputs(64)
    model(x)
    sizes = []
    for block in model.body.encoder:
        x = block(x)
        sizes.append(x.shape[1:3])
    assert sizes == [(64 // 2**i, 64 // 2**i) for i in range(1, len(TINY) + 1)]


def _saturated_output(model, channels=6):
    """Output for kernels scaled 100x, so the final tanh is driven far into saturation."""
    x = _inputs(32, channels)
    model(x)
    for variable in model.trainable_weights:
        if "kernel" in variable.path:
            variable.assign(100.0 * variable.numpy())
    return model(x).numpy()


def test_outputs_stay_in_tanh_range_when_saturated():
    restored = _saturated_output(RecNet(TINY))
    absolute = _saturated_output(WarpNet(TINY, flow_mode="absolute"))
    offset = _saturated_output(WarpNet(TINY, flow_mode="offset", offset_scale=0.25))
    for output in (restored, absolute):
        assert 0.99 < np.abs(output).max() <= 1.0
    assert 0.99 * 0.25 < np.abs(offset - identity_grid(32, 32).numpy()).max() <= 0.25 + 1e-6


# --- flow modes ---


def test_offset_mode_with_zero_last_layer_is_exactly_the_identity_grid():
    model = WarpNet(TINY, flow_mode="offset")
    x = _inputs(32)
    model(x)
    _zero_block(model.body.decoder[-1])
    flow = model(x).numpy()
    xs = np.linspace(-1.0, 1.0, 32, dtype="float32")
    mesh = np.stack(np.meshgrid(xs, xs), axis=-1)
    np.testing.assert_array_equal(flow, np.broadcast_to(identity_grid(32, 32).numpy(), flow.shape))
    np.testing.assert_allclose(flow[1], mesh, atol=1e-7)
    assert flow[0, 0, -1].tolist() == [1.0, -1.0]  # top-right pixel: x = 1, y = -1

    absolute = WarpNet(TINY, flow_mode="absolute")
    absolute(x)
    _zero_block(absolute.body.decoder[-1])
    np.testing.assert_array_equal(absolute(x).numpy(), 0.0)


# --- mixed precision ---


def test_mixed_precision_computes_in_float16_and_outputs_float32(mixed_float16):
    x = _inputs(32)
    warpnet, recnet, disc = WarpNet(TINY), RecNet(TINY), PatchDiscriminator(TINY_D)
    outputs = [warpnet(x), recnet(x), disc(np.concatenate([x, x[..., :3]], -1))]
    assert [output.dtype for output in outputs] == [tf.float32] * 3
    assert warpnet.body.encoder[1].conv.compute_dtype == "float16"
    assert disc.blocks[1].norm_layer.compute_dtype == "float16"
    # The flow is float32 end to end: zero last layer -> exactly the float32 identity grid.
    _zero_block(warpnet.body.decoder[-1])
    np.testing.assert_array_equal(warpnet(x).numpy()[0], identity_grid(32, 32).numpy()[0])
    # An explicit float32 model stays float32 throughout under the mixed global policy.
    assert RecNet(TINY, dtype="float32").body.encoder[1].conv.compute_dtype == "float32"


# --- U-Net skips ---


def _input_gradient_with_zero_bottleneck(model):
    x = tf.constant(_inputs(32))
    model(x)
    _zero_block(model.body.encoder[-1])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(model(x, training=False) ** 2)
    first_kernel = model.body.encoder[0].conv.kernel
    return tape.gradient(loss, x).numpy(), tape.gradient(loss, first_kernel).numpy()


def test_recnet_skips_carry_the_input_past_a_zeroed_bottleneck():
    input_grad, kernel_grad = _input_gradient_with_zero_bottleneck(RecNet(TINY))
    assert np.abs(input_grad).max() > 0
    assert np.abs(kernel_grad).max() > 0


def test_warpnet_has_no_skips():
    # Same surgery on WarpNet: nothing reaches the output any more.
    input_grad, kernel_grad = _input_gradient_with_zero_bottleneck(WarpNet(TINY))
    np.testing.assert_array_equal(input_grad, 0.0)
    np.testing.assert_array_equal(kernel_grad, 0.0)


def test_batch_of_one_still_depends_on_the_input_at_a_1x1_bottleneck():
    # BatchNorm at the 1x1 bottleneck with batch 1 would output beta for every input;
    # the innermost layer has no norm, so WarpNet (no skips) still sees its input.
    model = WarpNet(TINY, norm="batch")
    a = model(_inputs(32, batch=1, seed=1), training=True).numpy()
    b = model(_inputs(32, batch=1, seed=2), training=True).numpy()
    assert np.abs(a - b).max() > 1e-6


# --- dropout ---


def test_dropout_only_in_training_and_only_in_the_first_decoder_layers():
    model = RecNet(TINY, norm="instance", dropout=0.5, dropout_layers=3)
    assert [block.dropout for block in model.body.decoder] == [0.5, 0.5, 0.5, 0.0, 0.0]
    x = _inputs(32)
    inference = [model(x, training=False).numpy() for _ in range(2)]
    training = [model(x, training=True).numpy() for _ in range(2)]
    np.testing.assert_array_equal(inference[0], inference[1])
    assert np.abs(training[0] - training[1]).max() > 1e-6
    assert np.abs(training[0] - inference[0]).max() > 1e-6

    no_dropout = RecNet(TINY, norm="instance", dropout=0.0)
    np.testing.assert_array_equal(no_dropout(x, training=True), no_dropout(x, training=False))


# --- initialisation ---


def test_pix2pix_initialisation():
    model = RecNet((32, 64, 64), norm="batch")
    model.build((None, 8, 8, 6))
    kernel = model.body.encoder[1].conv.kernel.numpy()  # 16 * 32 * 64 values
    assert abs(kernel.mean()) < 1e-3
    assert 0.019 < kernel.std() < 0.021
    gamma = model.body.encoder[1].norm_layer.gamma.numpy()
    assert abs(gamma.mean() - 1.0) < 0.01 and 0.01 < gamma.std() < 0.03


def test_official_warpnet_initialisation_and_widths():
    warpnet = WarpNet((32, 64, 64), init_stddev=0.04)
    warpnet.build((None, 8, 8, 6))
    assert 0.038 < warpnet.body.encoder[1].conv.kernel.numpy().std() < 0.042
    assert 0.03 < warpnet.body.encoder[1].norm_layer.gamma.numpy().std() < 0.05
    official = WarpNet(OFFICIAL_WARPNET_WIDTHS)
    official.build((None, 256, 256, 6))
    assert official.count_params() == _generator_params(
        6, OFFICIAL_WARPNET_WIDTHS, 2, "batch", False
    )


# --- test-time mode (the official test script never leaves Torch's training mode) ---


def _moved_statistics(model, x):
    """Run a few training steps' worth of BatchNorm updates so moving averages differ from
    any one image's statistics."""
    for shift in (0.5, -0.3, 0.8):
        model(x + shift, training=True)


def test_per_image_norm_normalises_each_image_with_its_own_statistics():
    block = ConvBlock(5, norm="batch", activation=None, test_time_norm="per_image")
    x = _inputs(8, 3, batch=3)
    block(x, training=True)
    block.norm_layer.gamma.assign(np.linspace(0.5, 1.5, 5).astype("float32"))
    block.norm_layer.beta.assign(np.linspace(-0.2, 0.2, 5).astype("float32"))
    _moved_statistics(block, x)
    moving = [v.numpy().copy() for v in block.norm_layer.non_trainable_variables]
    conv = block.conv(x).numpy()
    mean = conv.mean(axis=(1, 2), keepdims=True)
    variance = conv.var(axis=(1, 2), keepdims=True)
    expected = (conv - mean) / np.sqrt(
        variance + 1e-5
    ) * block.norm_layer.gamma.numpy() + block.norm_layer.beta.numpy()
    got = block(x, training=False).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Batch-independent (each image alone gives the same), and nothing is updated.
    np.testing.assert_allclose(block(x[1:2], training=False).numpy(), got[1:2], atol=1e-5)
    for before, variable in zip(moving, block.norm_layer.non_trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), before)
    block.test_time_norm = "moving"
    assert np.abs(block(x, training=False).numpy() - got).max() > 1e-3


def test_batch_of_one_in_training_mode_equals_per_image_inference():
    """Torch's training-mode BatchNorm on one test image (the official test) is "per_image"."""
    model = RecNet(TINY, dropout=0.0, test_time_norm="per_image")
    x = _inputs(32, batch=2)
    _moved_statistics(model, x)
    weights = model.get_weights()
    per_image = model(x[:1], training=False).numpy()
    training = model(x[:1], training=True).numpy()  # also moves the averages: compare first
    model.set_weights(weights)
    np.testing.assert_allclose(per_image, training, atol=1e-5)


def test_test_time_dropout_keeps_dropout_on_at_inference():
    on = RecNet(TINY, norm="instance", dropout=0.5, test_time_dropout=True)
    x = _inputs(32)
    first, second = on(x, training=False).numpy(), on(x, training=False).numpy()
    assert np.abs(first - second).max() > 1e-6
    off = RecNet.from_config({**on.get_config(), "test_time_dropout": False})
    off.build(x.shape)
    off.set_weights(on.get_weights())
    np.testing.assert_array_equal(off(x, training=False).numpy(), off(x, training=False).numpy())
    # Inverted dropout, as in training: units are 0 or 1 / (1 - rate), the mean is kept.
    samples = inference_dropout(tf.ones((400, 64)), 0.5).numpy()
    assert set(np.unique(samples)) == {0.0, 2.0} and abs(samples.mean() - 1.0) < 0.02


# --- errors ---


@pytest.mark.parametrize("model_class", [WarpNet, RecNet])
def test_size_not_divisible_by_2_to_the_depth_is_a_config_error(model_class):
    with pytest.raises(BadConfigError, match=r"48x40 is not divisible by 32"):
        model_class(TINY)(np.zeros((1, 48, 40, 6), "float32"))


def test_too_small_discriminator_input_is_a_config_error():
    with pytest.raises(BadConfigError, match="16x16 is too small"):
        PatchDiscriminator(TINY_D)(np.zeros((1, 16, 16, 9), "float32"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: WarpNet(TINY, norm="layer"),
        lambda: RecNet(TINY, norm="BN"),
        lambda: PatchDiscriminator(TINY_D, norm=None),
        lambda: WarpNet(TINY, flow_mode="relative"),
        lambda: RecNet(()),
        lambda: RecNet(TINY, test_time_norm="batch"),
    ],
)
def test_bad_constructor_arguments_are_config_errors(make):
    with pytest.raises(BadConfigError):
        make()


# --- serialisation ---


def _tiny_models():
    return [
        (WarpNet(TINY, norm="instance", flow_mode="absolute"), 6),
        (WarpNet(TINY, offset_scale=0.5), 6),
        (RecNet(TINY, dropout=0.3, dropout_layers=2, out_channels=1), 6),
        (PatchDiscriminator(TINY_D), 9),
        (WarpNet(TINY, init_stddev=0.04, test_time_norm="per_image"), 6),
        (RecNet(TINY, test_time_norm="per_image"), 6),
    ]


def test_get_config_from_config_round_trip():
    for model, channels in _tiny_models():
        x = _inputs(32, channels)
        expected = model(x, training=False).numpy()
        clone = config_round_trip(model)
        clone.build(x.shape)
        clone.set_weights(model.get_weights())
        np.testing.assert_array_equal(clone(x, training=False).numpy(), expected)


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    for i, (model, channels) in enumerate(_tiny_models()):
        x = _inputs(32, channels)
        model(x, training=True)  # move BatchNorm statistics away from their initial values
        expected = model(x, training=False).numpy()
        loaded = keras_file_round_trip(model, tmp_path, f"model_{i}.keras")
        assert type(loaded) is type(model)
        assert loaded.get_config() == model.get_config()
        np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)
