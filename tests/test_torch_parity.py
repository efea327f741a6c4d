"""The PyTorch twin in benchmarks/ computes what the Keras models compute (eval mode, 1e-4)."""

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

from benchmarks import torch_reference  # noqa: E402
from gfrnet_tf.models import PatchDiscriminator, RecNet, WarpNet  # noqa: E402
from gfrnet_tf.ops import warp_image  # noqa: E402

WIDTHS = (8, 16, 16, 16, 16, 16)  # depth 6 at 64x64
SIZE = 64
ATOL = 1e-4


def _randomize(model, seed):
    """Weights of unit-scale activations (not pix2pix's 0.02), so every term shows in the output.

    Random biases, gammas, betas and moving statistics make the transfer of each one matter.
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape, name = variable.shape, variable.path.rsplit("/", 1)[-1]
        if name == "kernel":
            # Conv HWIO: 16 taps per input; transposed conv HWOI at stride 2: 4 taps per input.
            fan_in = 4 * shape[3] if "/up_" in variable.path else 16 * shape[2]
            value = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        elif name in ("gamma", "moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        else:  # bias, beta, moving_mean
            value = rng.normal(0.0, 0.1, shape)
        variable.assign(value.astype("float32"))


def _built(model, channels, seed):
    model.build((None, SIZE, SIZE, channels))
    _randomize(model, seed)
    return model


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def _nhwc(t):
    return np.transpose(t.detach().numpy(), (0, 2, 3, 1))


def _images(seed, batch=2):
    return np.random.default_rng(seed).uniform(-1, 1, (batch, SIZE, SIZE, 3)).astype("float32")


def _smooth_images(seed, batch=2):
    """Random low-frequency images: like faces, a few grey levels per pixel at most.

    The warp multiplies a flow difference by (size - 1) / 2 pixels and by the image
    gradient, so per-pixel noise would turn float32 round-off in the flow (~1e-6) into
    1e-4 differences in the warped guide; smooth images keep the comparison meaningful.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    freqs, phases = rng.uniform(0.5, 2.0, (batch, 3, 2)), rng.uniform(0, 2 * np.pi, (batch, 3))
    angle = freqs[..., 0, None, None] * xs + freqs[..., 1, None, None] * ys
    waves = np.sin(2 * np.pi * angle + phases[..., None, None])
    return np.transpose(waves, (0, 2, 3, 1)).astype("float32")


@pytest.mark.parametrize("norm,flow_mode", [("batch", "offset"), ("instance", "absolute")])
def test_full_gfrnet_forward_matches(norm, flow_mode):
    warpnet = _built(WarpNet(WIDTHS, norm=norm, flow_mode=flow_mode, offset_scale=0.5), 6, seed=1)
    recnet = _built(RecNet(WIDTHS, norm=norm), 6, seed=2)
    degraded, guide = _images(3), _smooth_images(4)

    flow = warpnet(np.concatenate([degraded, guide], -1), training=False)
    warped = warp_image(guide, flow)
    restored = recnet(tf.concat([degraded, warped], -1), training=False)

    twin = torch_reference.TorchGFRNet(
        torch_reference.twin_of(warpnet), torch_reference.twin_of(recnet)
    ).eval()
    with torch.no_grad():
        t_flow, t_warped, t_restored = twin(_nchw(degraded), _nchw(guide))

    np.testing.assert_allclose(t_flow.numpy(), flow.numpy(), atol=ATOL)
    with torch.no_grad():  # the two warps alone, on the same flow, agree to round-off
        same_flow_warp = torch.nn.functional.grid_sample(
            _nchw(guide), torch.from_numpy(flow.numpy()), align_corners=True, padding_mode="zeros"
        )
    np.testing.assert_allclose(_nhwc(same_flow_warp), warped.numpy(), atol=1e-5)
    np.testing.assert_allclose(_nhwc(t_warped), warped.numpy(), atol=ATOL)
    np.testing.assert_allclose(_nhwc(t_restored), restored.numpy(), atol=ATOL)
    # The comparison is not vacuous: the warp moves pixels and the outputs span tanh's range.
    assert np.abs(warped.numpy() - guide).max() > 0.5
    assert np.abs(restored.numpy()).std() > 0.1


def test_discriminator_matches():
    disc = _built(PatchDiscriminator((8, 16, 16, 16)), 9, seed=5)
    x = np.random.default_rng(6).uniform(-1, 1, (2, SIZE, SIZE, 9)).astype("float32")
    twin = torch_reference.twin_of(disc).eval()
    with torch.no_grad():
        logits = _nhwc(twin(_nchw(x)))
    expected = disc(x, training=False).numpy()
    assert logits.shape == expected.shape == (2, 6, 6, 1)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=ATOL)


def test_transposed_kernel_needs_no_flip():
    # A kernel that is not symmetric under a 180-degree flip: a flipped transfer would fail.
    recnet = _built(RecNet((4, 4), norm="none", dropout=0.0), 3, seed=7)
    kernel = recnet.body.decoder[0].conv.kernel
    assert not np.allclose(kernel.numpy(), kernel.numpy()[::-1, ::-1])
    x = _images(8, batch=1)
    twin = torch_reference.twin_of(recnet).eval()
    with torch.no_grad():
        np.testing.assert_allclose(_nhwc(twin(_nchw(x))), recnet(x).numpy(), atol=ATOL)


def test_training_mode_matches_and_running_variance_differs_only_by_bessel():
    recnet = _built(RecNet(WIDTHS, norm="batch", dropout=0.0), 6, seed=9)
    twin = torch_reference.twin_of(recnet).train()
    keras_bn = recnet.body.encoder[1].norm_layer
    old_variance = keras_bn.moving_variance.numpy()
    x = np.random.default_rng(10).uniform(-1, 1, (4, SIZE, SIZE, 6)).astype("float32")
    with torch.no_grad():
        train_out = _nhwc(twin(_nchw(x)))
    np.testing.assert_allclose(train_out, recnet(x, training=True).numpy(), atol=ATOL)
    torch_bn = twin.body.encoder[1].norm
    np.testing.assert_allclose(
        torch_bn.running_mean.numpy(), keras_bn.moving_mean.numpy(), atol=1e-5
    )
    # Same momentum, but PyTorch's running_var takes the unbiased batch variance (n / (n-1))
    # where Keras takes the biased one: a known, tiny difference after training steps.
    n = 4 * (SIZE // 4) ** 2
    keras_update = keras_bn.moving_variance.numpy() - 0.9 * old_variance
    torch_update = torch_bn.running_var.numpy() - 0.9 * old_variance
    np.testing.assert_allclose(torch_update, keras_update * n / (n - 1), rtol=1e-4, atol=1e-6)


def test_transfer_rejects_mismatched_twins():
    warpnet = _built(WarpNet(WIDTHS), 6, seed=11)
    with pytest.raises(ValueError, match="blocks"):
        torch_reference.transfer_weights(warpnet, torch_reference.TorchWarpNet(6, WIDTHS[:-1]))
