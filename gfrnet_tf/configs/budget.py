"""The schedule of a short training run (the demo's, the ablation study's), as config values.

The demo leaves the adversarial terms out (`DEMO_WARMUP_SHARE` 1: all its joint steps are
the "reconstruction" phase). Measured with `benchmarks/warmup.py` (64 px, smoke, 500 + 5000
steps, 32 test pairs at 4x; one seed each, load ~20): the adversarial terms from the start
gave 20.82 dB and a speckled, blotchy face; 3000 or 4000 reconstruction steps and then 1000
adversarial ones 21.30 / 21.13 dB with the speckle back within those 1000 steps; the
reconstruction terms alone 22.59 dB (8x 17.67 against 17.12) and a clean face, at about
two thirds of the training CPU. dlib's identity distance moved little (4x 0.497 / 0.535 /
0.517 / 0.520, 8x 0.564 / 0.572 / 0.559 / 0.554). At this size and budget the GAN adds
artefacts, not detail; the ablation study keeps the adversarial terms, as Table 1 does.

Measured with the quality benchmark (64 px, 1500 joint steps, held-out landmark error of
the warped guide / of the guide): the config's LR step-down (patience 1 on an 8-record
validation split) fell from 2e-4 to 2e-6 within 1000 steps and left 0.068 / 0.110; a
constant 2e-4 with 500 pre-training steps reached 0.053 / 0.110. 1e-3 was worse (0.088).
"""

from __future__ import annotations

from gfrnet_tf.errors import BadConfigError

LEARNING_RATE = 2e-4
PRETRAIN_EPOCHS = 2
EPOCH_STEPS = 250
# The demo's share of joint steps without the adversarial terms (measured above).
DEMO_WARMUP_SHARE = 1.0


def short_run_schedule(steps: int, epoch_steps: int = EPOCH_STEPS, warmup_share=0.0) -> dict:
    """`config.train` values for about `steps` joint-training steps (rounded up to whole data
    epochs of `epoch_steps`, each ending with validation), after `PRETRAIN_EPOCHS` such
    epochs of WarpNet pre-training, at a constant learning rate; with `warmup_share`, that
    share of the joint epochs (rounded down) leaves the adversarial terms out.

    A checkpoint every half epoch: the smoke config's 10-step interval would spend most of
    a longer run saving (each interval is one `fit` epoch with its callbacks).
    """
    if steps < 1:
        raise BadConfigError("--steps", f"must be >= 1, got {steps}")
    epoch_steps = max(1, min(epoch_steps, steps))
    epochs = -(-steps // epoch_steps)
    schedule = {
        "learning_rates": (LEARNING_RATE,),
        "warp_pretrain_epochs": PRETRAIN_EPOCHS,
        "steps_per_epoch": epoch_steps,
        "checkpoint_every": epoch_steps // 2 if epoch_steps % 2 == 0 else epoch_steps,
        "epochs": epochs,
    }
    if warmup_share:
        schedule["reconstruction_warmup_epochs"] = int(warmup_share * epochs)
    return schedule
