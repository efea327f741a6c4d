r"""A tiny GFRNet that trains end to end in a few minutes on a CPU (64x64, depth 6).

    gfrnet-train --config smoke --workdir /tmp/gfrnet-smoke --data DATASET_DIR

The `recommended` preset made small. It checks the plumbing (data, both phases, the LR
schedule, checkpoints, resume, TensorBoard), not image quality. Override like any
config, e.g. `--config.train.epochs=1`.
"""

from gfrnet_tf.configs import recommended


def get_config():
    config = recommended.get_config()
    config.input.image_size = 64
    config.input.batch_size = 2
    config.input.shuffle_buffer = 64
    # Degradations a 64 px face survives (scale 8 would leave 8 px).
    config.input.degradation.scale = (1.0, 2.0, 3.0, 4.0)
    config.input.degradation.blur = (0.0, 1.0, 1.5)

    config.model.widths = (8, 16, 32, 32, 32, 32)  # depth 6: 64 -> 1x1
    config.model.discriminator_widths = (8, 16, 32, 32)
    config.model.local_size = 32

    config.train.warp_pretrain_epochs = 1
    config.train.epochs = 2
    config.train.steps_per_epoch = 20
    config.train.plateau_patience = 1
    config.train.checkpoint_every = 10
    config.train.summary_every = 10
    # float32: bf16 did not win where measured (0.59x on a CPU without bf16 instructions);
    # `python -m benchmarks.train_step --cases smoke` on a bf16 CPU decides (README).
    config.train.precision = "float32"
    return config
