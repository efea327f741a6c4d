"""The warp ops lower to TFLite builtin ops only and give the same numbers in LiteRT."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from gfrnet_tf.ops import resample, warp_image

litert = pytest.importorskip("ai_edge_litert.interpreter")


def builtins_only(converter):
    """Converts with builtin ops only, so a Flex or custom op fails the conversion itself."""
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def run_litert(flatbuffer, *inputs):
    """Runs the model in LiteRT; returns its outputs and the names of the ops it holds.

    Default delegates are off so that the op list is the flatbuffer's own, not XNNPACK's
    `DELEGATE` node standing in for the ops it took over. Each input is resized to its
    value's shape first, so a model converted with a dynamic batch runs at any batch.
    """
    interpreter = litert.Interpreter(
        model_content=flatbuffer,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.resize_tensor_input(detail["index"], value.shape)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return outputs, {op["op_name"] for op in interpreter._get_ops_details()}


def assert_builtin_ops(op_names):
    foreign = [name for name in op_names if name.startswith("Flex") or name.upper() == "CUSTOM"]
    assert not foreign, op_names
    assert {"GATHER", "FLOOR", "MUL"} <= op_names, op_names  # the resampler is in the model


def test_resample_converts_to_builtins_and_matches_tf():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 9, 7, 3)).astype(np.float32)
    warp = rng.uniform(-1.5, 9.5, size=(2, 5, 11, 2)).astype(np.float32)
    concrete = tf.function(resample).get_concrete_function(
        tf.TensorSpec(data.shape), tf.TensorSpec(warp.shape)
    )
    flatbuffer = builtins_only(tf.lite.TFLiteConverter.from_concrete_functions([concrete]))
    (out,), op_names = run_litert(flatbuffer, data, warp)
    assert_builtin_ops(op_names)
    np.testing.assert_allclose(out, resample(data, warp).numpy(), atol=1e-6)


def test_warp_image_in_a_keras_model_converts_and_matches_tf():
    """A flow head + warp, the graph shape WarpNet's export will have."""
    image = keras.Input((16, 16, 3), batch_size=1)
    flow = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")(image)
    warped = keras.layers.Lambda(lambda tensors: warp_image(*tensors))([image, flow])
    model = keras.Model(image, warped)
    sample = np.random.default_rng(1).uniform(-1, 1, size=(1, 16, 16, 3)).astype(np.float32)
    flatbuffer = builtins_only(tf.lite.TFLiteConverter.from_keras_model(model))
    (out,), op_names = run_litert(flatbuffer, sample)
    assert_builtin_ops(op_names)
    assert "CONV_2D" in op_names
    np.testing.assert_allclose(out, model(sample).numpy(), atol=1e-5)


def test_dynamic_batch_keras_model_converts_to_builtins_and_matches_at_batch_1_and_3():
    """Issue 11: the usual `keras.Input((H, W, C))` leaves the batch unknown, and then an
    `x[..., tf.newaxis]` inside the ops became a StridedSlice with `new_axis_mask`, which is
    no builtin: the conversion failed. Both ops, one converted graph, two batch sizes."""
    image = keras.Input((16, 16, 3))
    flow = keras.layers.Conv2D(2, 3, padding="same", activation="tanh")(image)
    warped = keras.layers.Lambda(lambda tensors: warp_image(*tensors))([image, flow])
    # `resample` on its own, at pixel positions of another spatial shape than the image's.
    points = keras.layers.Lambda(lambda f: (f[:, :5, :11] + 1.0) * 8.0 - 0.5)(flow)
    sampled = keras.layers.Lambda(lambda tensors: resample(*tensors))([image, points])
    model = keras.Model(image, [warped, sampled])
    flatbuffer = builtins_only(tf.lite.TFLiteConverter.from_keras_model(model))
    for batch in (1, 3):
        sample = np.random.default_rng(batch).uniform(-1, 1, (batch, 16, 16, 3)).astype(np.float32)
        outputs, op_names = run_litert(flatbuffer, sample)
        assert_builtin_ops(op_names)
        assert "EXPAND_DIMS" in op_names
        expected = [tensor.numpy() for tensor in model(sample)]
        # LiteRT's output order need not be the model's: pair them by shape.
        outputs = sorted(outputs, key=lambda out: out.shape)
        expected = sorted(expected, key=lambda out: out.shape)
        assert [out.shape for out in outputs] == [(batch, 5, 11, 3), (batch, 16, 16, 3)]
        for out, reference in zip(outputs, expected):
            np.testing.assert_allclose(out, reference, atol=1e-5)
