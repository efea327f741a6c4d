"""TFLite export: the exact transposed-conv rewrite, builtin ops only, LiteRT parity."""

import keras
import numpy as np
import pytest

from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.export.tflite import convert_to_tflite, litert_interpreter, op_names, run_tflite
from gfrnet_tf.export.transpose_conv import (
    is_rewritable,
    phase_kernel,
    transpose_convs_as_phase_convs,
)
from support import SHALLOW, built_gfrnet

SIZE = 32


def _builtin_names():
    """Every op type of the TFLite schema's builtin enum (Flex/custom ops are not in it)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return {name for name in vars(schema.BuiltinOperator) if name.isupper()}


def _psnr(a, b):
    """PSNR in dB of two `[-1, 1]` images on the `[0, 1]` scale."""
    mse = np.mean(((a - b) / 2.0) ** 2)
    return 10 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    gfrnet = built_gfrnet(SHALLOW, SIZE)
    # Non-trivial BatchNorm statistics, so inference-mode normalisation is exercised.
    for variable in gfrnet.variables:
        if "moving" in variable.path:
            variable.assign(np.random.uniform(0.5, 1.5, variable.shape).astype("float32"))
    return gfrnet


@pytest.fixture(scope="module")
def pairs():
    """A smooth image and a shifted copy, like a face and its guide (not white noise)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    channels = [np.sin(3 * x + 2 * y + k) * np.cos(2 * x - y * k) for k in range(3)]
    image = np.stack(channels, -1).astype("float32")[None]
    return {"degraded": image * 0.8, "guide": np.roll(image, 2, axis=2) * 0.9}


@pytest.mark.parametrize(
    "height,width,in_channels,filters,use_bias,activation",
    [
        (1, 1, 3, 2, True, None),
        (4, 7, 5, 6, True, "relu"),
        (6, 3, 2, 4, False, "tanh"),
    ],
)
def test_phase_rewrite_equals_conv2d_transpose(
    height, width, in_channels, filters, use_bias, activation
):
    layer = keras.layers.Conv2DTranspose(
        filters,
        4,
        strides=2,
        padding="same",
        use_bias=use_bias,
        activation=activation,
        kernel_initializer="random_normal",
        bias_initializer="random_normal",
    )
    inputs = np.random.normal(size=(2, height, width, in_channels)).astype("float32")
    expected = layer(inputs).numpy()
    with transpose_convs_as_phase_convs(layer) as rewritten:
        got = layer(inputs).numpy()
    assert rewritten == 1
    assert got.shape == (2, 2 * height, 2 * width, filters)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)
    # The layer's own call is back afterwards.
    assert "call" not in vars(layer)


def test_phase_kernel_uses_each_tap_once():
    """Every one of the 16 taps lands in exactly one (phase, window position) slot."""
    kernel = np.arange(1, 17, dtype="float32").reshape(4, 4, 1, 1)
    phases = phase_kernel(kernel)
    assert phases.shape == (2, 2, 1, 4)
    assert sorted(phases.ravel().tolist()) == list(range(1, 17))
    # Hand example, even rows and even columns: taps (3, 1) x (3, 1) of the 4x4 kernel.
    np.testing.assert_array_equal(
        phases[..., 0, 0],
        [[kernel[3, 3, 0, 0], kernel[3, 1, 0, 0]], [kernel[1, 3, 0, 0], kernel[1, 1, 0, 0]]],
    )


def test_only_4x4_stride2_same_layers_are_rewritten():
    assert is_rewritable(keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same"))
    assert not is_rewritable(keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same"))
    assert not is_rewritable(keras.layers.Conv2DTranspose(2, 4, strides=2, padding="valid"))
    assert not is_rewritable(keras.layers.Conv2D(2, 4, strides=2, padding="same"))


def test_rewritten_model_matches(model, pairs):
    expected = model(pairs, training=False)
    with transpose_convs_as_phase_convs(model) as rewritten:
        got = model(pairs, training=False)
    assert rewritten == 2 * 3  # WarpNet and RecNet decoders
    np.testing.assert_allclose(got["restored"], expected["restored"], atol=1e-5)
    np.testing.assert_allclose(got["flow"], expected["flow"], atol=1e-5)


def test_fp32_parity_and_builtin_ops(model, pairs):
    interpreter = litert_interpreter(convert_to_tflite(model, SIZE, "fp32"))
    ops = op_names(interpreter)
    allowed = _builtin_names() - {"CUSTOM"}  # DELEGATE (XNNPACK's partitions) is builtin
    assert ops <= allowed, ops - allowed
    assert "DEPTH_TO_SPACE" in ops and "TRANSPOSE_CONV" not in ops  # the phase-conv rewrite
    expected = model(pairs, training=False)
    got = run_tflite(interpreter, pairs["degraded"], pairs["guide"])
    assert got["flow"].shape == (len(pairs["degraded"]), SIZE, SIZE, 2)
    for name in ("restored", "warped_guide", "flow"):
        # <= 1e-4 on the [0, 1] scale, i.e. 2e-4 in the model's [-1, 1] (the flow's range too).
        assert np.abs(got[name] - expected[name].numpy()).max() <= 2e-4, name


# The quantisation debugger used for selective int8 builds a tf.lite.Interpreter internally.
@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_fp16_and_int8_run_close_to_keras(model, pairs):
    expected = model(pairs, training=False)["restored"].numpy()
    fp16 = run_tflite(litert_interpreter(convert_to_tflite(model, SIZE, "fp16")), **pairs)
    calibration = [
        {"degraded": pairs["degraded"] * s, "guide": pairs["guide"] * s} for s in (0.6, 0.8, 1.0)
    ]
    int8_model = convert_to_tflite(model, SIZE, "int8", representative_data=calibration)
    int8_interpreter = litert_interpreter(int8_model)
    assert "QUANTIZE" in op_names(int8_interpreter)
    int8 = run_tflite(int8_interpreter, **pairs)
    assert _psnr(fp16["restored"], expected) > 40
    assert _psnr(int8["restored"], expected) > 20


def test_bad_quantization_settings(model):
    with pytest.raises(BadConfigError, match="one of"):
        convert_to_tflite(model, SIZE, "int4")
    with pytest.raises(BadConfigError, match="representative_data"):
        convert_to_tflite(model, SIZE, "int8")
