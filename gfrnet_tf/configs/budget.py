"""The schedule of a short training run (the demo's, the ablation study's), as config values.

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
# The demo's share of joint steps without the adversarial terms (benchmarks/warmup.py).
DEMO_WARMUP_SHARE = 0.8


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
