r"""GFRNet exactly as trained in §4.1 of the paper (256x256, batch 1, Adam 2e-4 -> 2e-6).

    gfrnet-train --config paper --workdir runs/paper --data DATASET_DIR \
        --config.model.vgg_face_weights=vgg_face.npz

Any value can be overridden on the command line, e.g. the wider WarpNet/RecNet of the
PyTorch reimplementation or another ablation (§4.3):

    --config.model.widths='(64, 128, 256, 512, 1024, 1024, 1024, 1024)'
    --config.input.batch_size=8
    --config.model.variant=no_warp --config.train.warp_pretrain_epochs=0  # -W has no WarpNet

Validation runs over all of `--val_data` once per epoch (§4.1: 200 WebFace pairs).

Not from the paper: the pix2pix widths (the paper's are in a supplement we do not have),
a checkpoint interval, and the TensorBoard cadence.
"""

import ml_collections

from gfrnet_tf.data import default_input_config
from gfrnet_tf.models.gfrnet import DEFAULT_LOSS_WEIGHTS, MODEL_CONFIG_DEFAULTS


def get_config():
    config = ml_collections.ConfigDict()

    config.input = default_input_config()
    config.input.image_size = 256
    config.input.batch_size = 1  # §4.1; global, split over replicas

    # Every key of build_gfrnet, so each can be overridden; the §4.1 ones spelled out.
    config.model = ml_collections.ConfigDict(MODEL_CONFIG_DEFAULTS)
    config.model.widths = (64, 128, 256, 512, 512, 512, 512, 512)  # pix2pix; depth 8: 256 -> 1x1
    config.model.discriminator_widths = (64, 128, 256, 512)  # 70x70 PatchGAN
    config.model.norm = "batch"
    config.model.variant = "full"
    config.model.part_discriminators = False  # not in the paper
    config.model.vgg_face_weights = ""  # a file the user supplies; "" turns the perceptual term off
    config.model.loss_weights = ml_collections.ConfigDict(DEFAULT_LOSS_WEIGHTS)
    config.model.loss_weights.update(
        {"l2": 100.0, "perceptual": 0.001, "adv_global": 1.0, "adv_local": 0.5, "landmark": 10.0, "tv": 1.0})

    config.train = ml_collections.ConfigDict()
    config.train.warp_pretrain_epochs = 5  # WarpNet on the flow loss alone
    config.train.epochs = 100  # joint training after the pre-training
    config.train.steps_per_epoch = 0  # one pass over the dataset's training pairs
    config.train.learning_rates = (2e-4, 2e-5, 2e-6)
    config.train.adam_beta_1 = 0.5
    # "trained until the reconstruction loss on the validation set becomes non-decreasing":
    # one epoch without a decrease moves to the next rate.
    config.train.plateau_patience = 1
    # Steps; one pass is rounded up to whole intervals (the paper's 20273 pairs = 11 * 1843).
    config.train.checkpoint_every = 1843
    config.train.keep_checkpoints = 3
    config.train.summary_every = 500  # steps between TensorBoard scalars + image grids
    config.train.jit_compile = False
    config.train.seed = 0
    return config
