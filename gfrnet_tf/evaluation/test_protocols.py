"""What the 4x/8x test settings draw besides the scale (`protocol.setting_config` applies it),
defined here only; free of TensorFlow, so a command's `--help` lists them without loading it.

- "drawn" (default): blur, noise and JPEG quality still drawn (seeded) from the sets.
  Table 1 most likely used this: §4.3 says "only two scale factors, 4 and 8, are
  considered for the test images" -- a restriction of Eq. 4's scale, the other terms kept
  -- and compares against deblurring, denoising and JPEG-artefact methods, which would
  have nothing to remove from a clean bicubic downscale; its PSNRs (e.g. 24.6 dB for
  SRCNN at 4x on 256 px faces) are also far below what a clean 4x face gives;
- "scale_only": `input.degradation.mode="fixed"`, the scale alone (no blur, noise or
  JPEG): plain super-resolution, the usual SR benchmark.
"""

TEST_PROTOCOLS = {
    "drawn": "4x/8x: seeded Eq. 4 with the scale fixed, blur/noise/JPEG drawn from the sets",
    "scale_only": "4x/8x: the scale alone (input.degradation.mode='fixed', no blur/noise/JPEG)",
}
DEFAULT_TEST_PROTOCOL = "drawn"
