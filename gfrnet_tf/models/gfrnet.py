"""GFRNet: WarpNet + RecNet + global/local PatchGANs trained with the losses of §3.3.

`call` is inference only (so export needs nothing but the generator); `train_step` /
`test_step` carry the GAN, perceptual and flow losses for `fit` / `evaluate`, following
the keras-io custom-train-step GAN guide: optimizers through `compile`, one tape per
network, every loss term a `keras.metrics.Mean` tracker.

    with strategy.scope():
        model = build_gfrnet(config.model)
        model.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                      d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))
        model.build_all((256, 256))
    model.phase = "warp"    # §4.2: WarpNet alone on the flow loss
    model.fit(data, epochs=5)
    model.phase = "joint"   # then the full objective
    model.fit(data, initial_epoch=5, epochs=105)
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf

from gfrnet_tf import ibug68, losses
from gfrnet_tf.errors import BadConfigError, check_non_negative, is_real_number
from gfrnet_tf.models.discriminator import PATCHGAN_WIDTHS, PatchDiscriminator
from gfrnet_tf.models.group_adam import group_learning_rate
from gfrnet_tf.models.layers import (
    OUTPUT_DTYPE,
    PIX2PIX_INIT_STDDEV,
    PIX2PIX_WIDTHS,
    check_choice,
    check_test_time_norm,
)
from gfrnet_tf.models.recnet import RecNet
from gfrnet_tf.models.vgg_face import VGGFace, load_vgg_face_weights
from gfrnet_tf.models.warpnet import WarpNet
from gfrnet_tf.ops import crop_to_landmarks, identity_grid, symmetry_axis, warp_image

# §4.5 ablations: Ours(Full), (-F), (-W), (-WG), (R).
VARIANTS = ("full", "no_flow_loss", "no_warp", "no_guide", "random_guide")
PHASES = ("warp", "reconstruction", "joint")
# The range the networks see images in: the project's [-1, 1] (tanh output) or the
# official Torch model's [0, 1] (sigmoid output here). Inputs and outputs stay [-1, 1].
IMAGE_RANGES = ("signed", "unit")
# §4.2 trade-off parameters, plus two not in the paper: the optional part discriminators
# (weighted like the local discriminator) and the flow symmetry term (off at 0; computed
# and reported only when its weight is not 0).
DEFAULT_LOSS_WEIGHTS = {
    "l2": 100.0,
    "perceptual": 0.001,
    "adv_global": 1.0,
    "adv_local": 0.5,
    "landmark": 10.0,
    "tv": 1.0,
    "adv_parts": 0.5,
    "flow_symmetry": 0.0,
}
# Every tracker a GFRNet owns; `GFRNet.metrics` reports the subset its variant and phase
# compute. "reconstruction" is Eq. 6's L_r (weighted l2 + perceptual), the quantity §4.2's
# learning-rate schedule watches on the validation set.
TRACKED = (*DEFAULT_LOSS_WEIGHTS, "reconstruction", "g_total", "d_global", "d_local", "d_parts")
FLOW_TERMS = ("landmark", "tv", "flow_symmetry")
# The symmetry term's step along the target's axis as a fraction of the image side: the
# PyTorch reimplementation's C = 10 px at its 256 px (2.5 px at 64 px).
DEFAULT_SYMMETRY_SHIFT = 10 / 256
# Part discriminators (not in the paper; after the PyTorch reimplementation, whose part
# discriminators end in one logit and which adds an eye-pair one: docs/FIDELITY.md):
# 0-based iBUG-300W index ranges (1-based 37-42, 43-48, 28-36, 49-68); eyes are named by
# their side in the image.
# Keys name the image side of a frontal face (they name the part discriminators' layers).
FACE_PARTS = {
    part: (points.start, points.stop)
    for part, points in (
        ("eye_left", ibug68.RIGHT_EYE),
        ("eye_right", ibug68.LEFT_EYE),
        ("nose", ibug68.NOSE),
        ("mouth", ibug68.MOUTH),
    )
}
_SUBMODELS = (
    "recnet",
    "global_discriminator",
    "local_discriminator",
    "warpnet",
    "perceptual_network",
)


@keras.saving.register_keras_serializable(package="gfrnet_tf")
class GFRNet(keras.Model):
    """Guided face restoration: `{"degraded", "guide"}` -> `{"restored", "warped_guide", "flow"}`.

    Sub-models: `recnet`, the `global_discriminator` / `local_discriminator` PatchGANs, a
    `warpnet` (None for the "no_warp" / "no_guide" variants, which then report the guide
    unwarped and the identity flow) and an optional frozen `perceptual_network`
    (`VGGFace`; None switches the perceptual term off). The discriminators see
    `concat(I_d, I_g, image)` -- `concat(I_d, image)` for "no_guide", which has no guide --
    the local one cropped to the target's landmark box and resized to `local_size`.
    Optional `part_discriminators` (a dict over `FACE_PARTS`, not in the paper) see the
    same concatenation cropped to each part's landmark box, resized to `part_size`.

    `variant="random_guide"` (Ours(R)) is the full network trained on guides of other
    people, which the data supplies (`make_dataset(..., other_identity_guides=True)`, at
    any batch size); its `train_step` / `test_step` refuse batches that do not say whose
    guide they hold (`targets["guide_identity"]`). `call` uses the guide it is given.

    `phase="warp"` is §4.2's WarpNet pre-training: `train_step` then updates WarpNet alone
    on the flow loss (`landmark` and `tv` weights). `phase="reconstruction"` (not in the
    paper) trains the generator on the full objective without its adversarial terms, and
    no discriminator: a warm-up before the GAN, as ESRGAN-style training starts from a
    PSNR-oriented model. Set `model.phase = "joint"` between `fit` calls to continue with
    the full objective; the setter drops the traced train and test functions, because the
    phase is a Python branch baked into the trace.

    Losses are per-sample and reduced with `tf.nn.compute_average_loss` (sum over the
    global batch), so gradients are right under `tf.distribute`. Each discriminator
    minimises its own loss (they share no variables, so their losses are simply summed).
    The part terms `adv_parts` and `d_parts` are both *averaged* over the four parts, so
    one weight means for all parts together what it means for one discriminator.

    Fidelity switches (docs/FIDELITY.md): `loss_reduction` ("paper" | "official" |
    "project", `gfrnet_tf.losses`), `tv_target` ("flow": Eq. 10 on Phi | "displacement":
    on Phi - identity), `image_range` (`IMAGE_RANGES`: the networks, the warp's zero
    padding, the l2 term and the discriminators see images in [-1, 1] or in [0, 1]; RecNet's
    output activation must match), `generator_loss` ("non_saturating" | "minimax", Eq. 7 as
    written), `d_loss_halved` (the PyTorch pix2pix's 0.5 on the discriminator loss) and
    `detach_warped_guide` (RecNet's losses do not reach WarpNet, which then learns from
    the flow loss alone, as the PyTorch reimplementation does); the reimplementation's flow
    symmetry term (`losses.flow_symmetry_loss`) is part of the flow loss when
    `loss_weights["flow_symmetry"]` is not 0, stepping `symmetry_shift` of the image side.

    `metrics` (what `fit`, the progress bar and TensorBoard show) holds only the terms the
    variant and phase compute: no `perceptual` without a feature network, no part terms
    without part discriminators, only the flow loss during the "warp" phase.
    """

    def __init__(
        self,
        recnet,
        global_discriminator,
        local_discriminator,
        warpnet=None,
        perceptual_network=None,
        variant="full",
        local_size=128,
        local_margin=0.1,
        part_discriminators=None,
        part_size=32,
        part_margin=0.5,
        loss_weights=None,
        real_label=0.9,
        phase="joint",
        loss_reduction="project",
        tv_target="displacement",
        d_loss_halved=False,
        detach_warped_guide=False,
        symmetry_shift=DEFAULT_SYMMETRY_SHIFT,
        image_range="signed",
        generator_loss="non_saturating",
        **kwargs,
    ):
        # The container itself stays float32 under a mixed policy: Keras would otherwise cast
        # the degraded and guide images to the compute dtype on the way in, and the guide
        # would reach the (float32) warp already rounded (bfloat16: to 1/4 grey level).
        # The sub-networks compute in the policy they were built under.
        kwargs.pop("dtype", None)
        super().__init__(dtype=OUTPUT_DTYPE, **kwargs)
        if variant not in VARIANTS:
            raise BadConfigError("model.variant", f"{variant!r} is not one of {VARIANTS}")
        if (warpnet is None) != (variant in ("no_warp", "no_guide")):
            need = "needs" if warpnet is None else "has no use for"
            raise BadConfigError("model.variant", f"variant {variant!r} {need} a WarpNet")
        _check_known_keys("model.loss_weights", loss_weights or {}, DEFAULT_LOSS_WEIGHTS)
        losses.check_reduction(loss_reduction)
        if tv_target not in losses.TV_TARGETS:
            raise BadConfigError(
                "model.tv_target", f"{tv_target!r} is not one of {losses.TV_TARGETS}"
            )
        _check_symmetry_term((loss_weights or {}).get("flow_symmetry", 0.0), symmetry_shift)
        check_choice(image_range, IMAGE_RANGES, "image_range", "model")
        losses.check_generator_loss(generator_loss)
        if part_discriminators is not None and set(part_discriminators) != set(FACE_PARTS):
            raise BadConfigError(
                "part_discriminators", f"needs exactly the parts {sorted(FACE_PARTS)}"
            )
        self.recnet = recnet
        self.global_discriminator = global_discriminator
        self.local_discriminator = local_discriminator
        self.warpnet = warpnet
        self.perceptual_network = perceptual_network
        self.variant = variant
        self.local_size = local_size
        self.local_margin = local_margin
        self.part_discriminators = part_discriminators
        self.part_size = part_size
        self.part_margin = part_margin
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.real_label = real_label
        self.loss_reduction = loss_reduction
        self.tv_target = tv_target
        self.d_loss_halved = d_loss_halved
        self.detach_warped_guide = detach_warped_guide
        self.symmetry_shift = symmetry_shift
        self.image_range = image_range
        self.generator_loss = generator_loss
        self.phase = phase
        self.trackers = {name: keras.metrics.Mean(name=name) for name in TRACKED}

    # ----------------------------------------------------------------- phase
    @property
    def phase(self):
        return self._phase

    @phase.setter
    def phase(self, value):
        if value not in PHASES:
            raise BadConfigError("phase", f"{value!r} is not one of {PHASES}")
        if value == "warp" and self.variant in ("no_flow_loss", "no_warp", "no_guide"):
            raise BadConfigError(
                "phase", f"variant {self.variant!r} has no flow loss to pre-train on"
            )
        self._phase = value
        self.train_function = None
        self.test_function = None

    # ------------------------------------------------------------ inference
    def call(self, inputs, training=False):
        degraded, guide = self._network_inputs(inputs)
        if self.warpnet is None:
            shape = tf.shape(degraded)
            flow = tf.tile(identity_grid(shape[1], shape[2]), [shape[0], 1, 1, 1])
            warped = guide
        else:
            flow = self._flow(inputs, training)
            # Warp in float32 even under mixed precision: float16 pixel coordinates are
            # only 1/8 px exact at 256. Outside the guide it samples zeros: mid-grey in
            # [-1, 1], black in [0, 1].
            warped = tf.cast(warp_image(tf.cast(guide, tf.float32), flow), guide.dtype)
            if self.detach_warped_guide:
                warped = tf.stop_gradient(warped)
        rec_input = degraded if self.variant == "no_guide" else tf.concat([degraded, warped], -1)
        restored = self.recnet(rec_input, training=training)
        # float32 outputs in [-1, 1] whatever the compute dtype (mixed precision) and the
        # networks' range, for losses and export.
        return {
            "restored": self._from_network(tf.cast(restored, tf.float32)),
            "warped_guide": self._from_network(tf.cast(warped, tf.float32)),
            "flow": tf.cast(flow, tf.float32),
        }

    # -------------------------------------------------------------- building
    def build(self, input_shape):
        # Sub-models restored from a .keras file arrive built; building them again would
        # add a second set of variables.
        shape = tuple(input_shape["degraded"])
        batch, height, width, channels = shape
        guide_channels = 0 if self.variant == "no_guide" else channels
        d_channels = 2 * channels + guide_channels
        shapes = {
            "warpnet": (batch, height, width, 2 * channels),
            "recnet": (batch, height, width, channels + guide_channels),
            "global_discriminator": (batch, height, width, d_channels),
            "local_discriminator": (batch, self.local_size, self.local_size, d_channels),
            "perceptual_network": shape,
        }
        parts = self.part_discriminators or {}
        part_shape = (batch, self.part_size, self.part_size, d_channels)
        networks = [(getattr(self, name), network_shape) for name, network_shape in shapes.items()]
        for network, network_shape in networks + [(d, part_shape) for d in parts.values()]:
            if network is not None and not network.built:
                network.build(network_shape)

    def build_all(self, image_size):
        """Creates every variable, both optimizers' slots included, before `fit`.

        Call after `compile` and under the distribution strategy's scope: with two
        optimizers, variables created lazily inside the first replicated step break
        `MirroredStrategy` (docs/DESIGN.md, known traps).
        """
        if getattr(self, "g_optimizer", None) is None:
            raise BadConfigError(
                self.name, "call compile(g_optimizer, d_optimizer) before build_all"
            )
        if not self.built:
            shape = (None, *image_size, 3)
            self.build({"degraded": shape, "guide": shape})
        self._build_optimizers()

    def _build_optimizers(self):
        self.g_optimizer.build(self._generator_variables())
        self.d_optimizer.build(self._discriminator_variables())
        if self.warpnet is not None:
            self.w_optimizer.build(self.warpnet.trainable_variables)

    def compile(self, g_optimizer, d_optimizer, w_optimizer=None, **kwargs):
        """`g_optimizer` updates WarpNet + RecNet, `d_optimizer` both discriminators, and
        `w_optimizer` WarpNet in the "warp" pre-training phase.

        §4.2 uses Adam (lr 2e-4, beta1 0.5) for both; loss weights are model arguments. A
        `GroupAdam` (`gfrnet_tf.models.group_adam`) as `g_optimizer` steps WarpNet at its
        `group_multiplier` times the rate in the joint phase. Each phase has its own Adam
        state: with one shared optimizer, RecNet's zero moments were bias-corrected with the
        pre-training's step count t, and a zero-moment weight's step is lr * sqrt(1 -
        beta2^t) / (1 - beta1^t) * (1 - beta1) / sqrt(1 - beta2): lr at t = 1, but 9.9 lr
        after 500 pre-training steps and 15.8 lr in the limit (beta1 0.5, beta2 0.999).
        `w_optimizer` defaults to a fresh optimizer with `g_optimizer`'s settings. A
        checkpoint saved before it existed loads (Keras warns that it skips the missing
        optimizer, which starts fresh).
        """
        # optimizer=None: Keras would otherwise add a default RMSprop that `fit` builds over
        # every weight and every checkpoint stores, though the steps use only the ones here.
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        self.w_optimizer = w_optimizer or keras.optimizers.deserialize(
            keras.optimizers.serialize(g_optimizer)
        )

    def get_compile_config(self):
        # The optimizers go into a .keras file, so `load_model` restores their state too.
        if getattr(self, "g_optimizer", None) is None:
            return None
        return {
            name: keras.saving.serialize_keras_object(getattr(self, name))
            for name in ("g_optimizer", "d_optimizer", "w_optimizer")
        }

    def compile_from_config(self, config):
        self.compile(
            *(
                keras.saving.deserialize_keras_object(config[name]) if name in config else None
                for name in ("g_optimizer", "d_optimizer", "w_optimizer")
            )
        )
        if self.built:  # slots must exist before the saved values are loaded into them
            self._build_optimizers()

    @property
    def metrics(self):
        return [self.trackers[name] for name in self.reported_terms()]

    def reported_terms(self):
        """Names of the terms the current variant and phase compute, in `TRACKED` order."""
        flow = self._flow_term_names() if self.warpnet is not None else ()
        if self.phase == "warp":
            names = {*flow, "g_total"}
        else:
            names = {"l2", "reconstruction", "g_total", *flow}
            if self.perceptual_network is not None:
                names.add("perceptual")
            if self.phase == "joint":
                names.update(("adv_global", "adv_local", "d_global", "d_local"))
                if self.part_discriminators:
                    names.update(("adv_parts", "d_parts"))
        return [name for name in TRACKED if name in names]

    # -------------------------------------------------------------- training
    def train_step(self, data):
        inputs, targets = self._checked_guides(*data)
        if self.phase == "warp":
            self._warp_step(inputs, targets)
        else:
            outputs = self._generator_step(inputs, targets)
            if self.phase == "joint":
                self._discriminator_step(inputs, targets, outputs["restored"])
        return self._results()

    def test_step(self, data):
        inputs, targets = self._checked_guides(*data)
        if self.phase == "warp":
            flow = self._flow(inputs, training=False)
            self._track(self._weighted_total(self._flow_terms(flow, targets)))
        else:
            outputs = self(inputs, training=False)
            terms = self._generator_terms(inputs, targets, outputs, training=False)
            self._track(self._weighted_total(terms))
            if self.phase == "joint":
                self._track(
                    self._discriminator_terms(inputs, targets, outputs["restored"], training=False)
                )
        return self._results()

    def _warp_step(self, inputs, targets):
        """§4.2 pre-training: WarpNet alone on the flow loss, with its own optimizer."""
        with tf.GradientTape() as tape:
            flow = self._flow(inputs, training=True)
            terms = self._weighted_total(self._flow_terms(flow, targets))
            loss = self._scaled_mean(self.w_optimizer, terms["g_total"])
        self._minimise(self.w_optimizer, tape, loss, self.warpnet.trainable_variables)
        self._track(terms)

    def _generator_step(self, inputs, targets):
        """One G update (WarpNet + RecNet) against the current discriminators; returns the outputs.

        The discriminators run with `training=True` as in pix2pix, so their BatchNorm
        moving statistics (unused: they never run in inference mode during training) move;
        their trainable weights are not touched.
        """
        variables = self._generator_variables()
        with tf.GradientTape() as tape:
            outputs = self(inputs, training=True)
            terms = self._weighted_total(
                self._generator_terms(inputs, targets, outputs, training=True)
            )
            loss = self._scaled_mean(self.g_optimizer, terms["g_total"])
        warpnet = self.warpnet.trainable_variables if self.warpnet is not None else ()
        self._minimise(self.g_optimizer, tape, loss, variables, group=warpnet)
        self._track(terms)
        return outputs

    def _discriminator_step(self, inputs, targets, restored):
        """One update of both discriminators on real `target` vs the (detached) `restored`."""
        variables = self._discriminator_variables()
        with tf.GradientTape() as tape:
            terms = self._discriminator_terms(
                inputs, targets, tf.stop_gradient(restored), training=True
            )
            loss = self._scaled_mean(self.d_optimizer, tf.add_n(list(terms.values())))
        self._minimise(self.d_optimizer, tape, loss, variables)
        self._track(terms)

    # ---------------------------------------------------------------- losses
    def _generator_terms(self, inputs, targets, outputs, training):
        """Per-sample G loss terms (unweighted) for the restored image and the flow."""
        target, restored = targets["target"], outputs["restored"]
        # The l2 term and the discriminators see the networks' range; VGG-Face takes [-1, 1].
        restored_n = self._to_network(restored)
        terms = {"l2": losses.l2_loss(self._to_network(target), restored_n, self.loss_reduction)}
        if self.phase == "joint":
            terms.update(self._adversarial_terms(inputs, targets, restored_n, training))
        if self.perceptual_network is not None:
            terms["perceptual"] = losses.perceptual_loss(self.perceptual_network, target, restored)
        if self.warpnet is not None:
            terms.update(self._flow_terms(outputs["flow"], targets))
        return terms

    def _adversarial_terms(self, inputs, targets, restored_n, training):
        """The generator's adversarial terms: the verdicts on `restored_n` (networks' range)."""
        fake = tf.concat([self._condition(inputs), restored_n], -1)

        def adversarial(discriminator, images):
            return losses.generator_adversarial_loss(
                discriminator(images, training=training), self.real_label, self.generator_loss
            )

        terms = {
            "adv_global": adversarial(self.global_discriminator, fake),
            "adv_local": adversarial(self.local_discriminator, self._local_crop(fake, targets)),
        }
        if self.part_discriminators:
            crops = self._part_crops(fake, targets)
            terms["adv_parts"] = tf.add_n(
                [adversarial(d, crops[part]) for part, d in self.part_discriminators.items()]
            ) / len(FACE_PARTS)
        return terms

    def _flow_term_names(self):
        return FLOW_TERMS if self.loss_weights["flow_symmetry"] else FLOW_TERMS[:-1]

    def _flow_terms(self, flow, targets):
        landmarks, guide_landmarks = targets["landmarks"], targets["guide_landmarks"]
        terms = {
            "landmark": losses.landmark_loss(flow, landmarks, guide_landmarks, self.loss_reduction),
            "tv": losses.tv_loss(flow, self.loss_reduction, self.tv_target),
        }
        if "flow_symmetry" in self._flow_term_names():
            terms["flow_symmetry"] = losses.flow_symmetry_loss(
                flow, symmetry_axis(landmarks), symmetry_axis(guide_landmarks), self.symmetry_shift
            )
        return terms

    def _discriminator_terms(self, inputs, targets, restored, training):
        condition = self._condition(inputs)
        real = tf.concat([condition, self._to_network(targets["target"])], -1)
        fake = tf.concat([condition, self._to_network(restored)], -1)
        real_local, fake_local = self._local_crop(real, targets), self._local_crop(fake, targets)

        def loss(discriminator, real_images, fake_images):
            return losses.discriminator_loss(
                discriminator(real_images, training=training),
                discriminator(fake_images, training=training),
                self.real_label,
                self.d_loss_halved,
            )

        terms = {
            "d_global": loss(self.global_discriminator, real, fake),
            "d_local": loss(self.local_discriminator, real_local, fake_local),
        }
        if self.part_discriminators:
            real_parts, fake_parts = (
                self._part_crops(real, targets),
                self._part_crops(fake, targets),
            )
            terms["d_parts"] = tf.add_n(
                [
                    loss(discriminator, real_parts[part], fake_parts[part])
                    for part, discriminator in self.part_discriminators.items()
                ]
            ) / len(FACE_PARTS)
        return terms

    def _weighted_total(self, terms):
        """Adds `g_total`, the weighted sum the generator minimises (-F drops the flow terms
        from it but still reports them, so the ablation's misalignment stays visible), and
        with `l2` Eq. 6's weighted `reconstruction` loss."""
        dropped = FLOW_TERMS if self.variant == "no_flow_loss" else ()
        weighted = {n: self.loss_weights[n] * value for n, value in terms.items()}
        total = tf.add_n([value for n, value in weighted.items() if n not in dropped])
        extra = {"g_total": total}
        if "l2" in terms:
            extra["reconstruction"] = tf.add_n(
                [weighted[n] for n in ("l2", "perceptual") if n in weighted]
            )
        return {**terms, **extra}

    # --------------------------------------------------------------- helpers
    def _checked_guides(self, inputs, targets):
        """The batch as it is; for Ours(R) only if it says whose guides it holds, so that R
        never trains on the target's own guide by mistake."""
        if self.variant == "random_guide" and "guide_identity" not in targets:
            raise BadConfigError(
                "model.variant",
                "random_guide trains on guides of other people: make its data with "
                "make_dataset(..., other_identity_guides=True)",
            )
        return inputs, targets

    def _to_network(self, images):
        """`[-1, 1]` images in the range the networks work in (`image_range`)."""
        return images if self.image_range == "signed" else (images + 1.0) * 0.5

    def _from_network(self, images):
        return images if self.image_range == "signed" else images * 2.0 - 1.0

    def _network_inputs(self, inputs):
        return self._to_network(inputs["degraded"]), self._to_network(inputs["guide"])

    def _flow(self, inputs, training):
        return self.warpnet(tf.concat(self._network_inputs(inputs), -1), training=training)

    def _condition(self, inputs):
        if self.variant == "no_guide":
            return self._to_network(inputs["degraded"])
        return tf.concat(self._network_inputs(inputs), -1)

    def _local_crop(self, images, targets):
        return crop_to_landmarks(images, targets["landmarks"], self.local_size, self.local_margin)

    def _part_crops(self, images, targets):
        landmarks = targets["landmarks"]
        return {
            part: crop_to_landmarks(
                images, landmarks[:, start:end], self.part_size, self.part_margin
            )
            for part, (start, end) in FACE_PARTS.items()
        }

    def _generator_variables(self):
        networks = [self.recnet] if self.warpnet is None else [self.warpnet, self.recnet]
        return [v for network in networks for v in network.trainable_variables]

    def _discriminator_variables(self):
        networks = [self.global_discriminator, self.local_discriminator]
        networks += list((self.part_discriminators or {}).values())
        return [v for network in networks for v in network.trainable_variables]

    @staticmethod
    def _scaled_mean(optimizer, per_sample):
        # Global-batch mean (right under tf.distribute), then the optimizer's loss scale
        # (a no-op unless it is a LossScaleOptimizer for mixed precision).
        return optimizer.scale_loss(tf.nn.compute_average_loss(per_sample))

    @staticmethod
    def _minimise(optimizer, tape, loss, variables, group=()):
        # `group` steps at the optimizer's group rate (a `GroupAdam`: WarpNet in the joint
        # phase at `config.train.warpnet_lr_multiplier` times the rate).
        with group_learning_rate(optimizer, group):
            optimizer.apply(tape.gradient(loss, variables), variables)

    def _track(self, terms):
        for name, values in terms.items():
            self.trackers[name].update_state(values)

    def _results(self):
        return {tracker.name: tracker.result() for tracker in self.metrics}

    # ------------------------------------------------------------ serialising
    def get_config(self):
        config = super().get_config()
        for name in _SUBMODELS:
            config[name] = keras.saving.serialize_keras_object(getattr(self, name))
        parts = self.part_discriminators
        if parts:
            parts = {part: keras.saving.serialize_keras_object(d) for part, d in parts.items()}
        config.update(
            part_discriminators=parts,
            variant=self.variant,
            local_size=self.local_size,
            local_margin=self.local_margin,
            part_size=self.part_size,
            part_margin=self.part_margin,
            loss_weights=dict(self.loss_weights),
            real_label=self.real_label,
            phase=self.phase,
            loss_reduction=self.loss_reduction,
            tv_target=self.tv_target,
            d_loss_halved=self.d_loss_halved,
            detach_warped_guide=self.detach_warped_guide,
            symmetry_shift=self.symmetry_shift,
            image_range=self.image_range,
            generator_loss=self.generator_loss,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in _SUBMODELS:
            config[name] = keras.saving.deserialize_keras_object(config[name])
        parts = config.get("part_discriminators")
        if parts:
            parts = {part: keras.saving.deserialize_keras_object(d) for part, d in parts.items()}
            config["part_discriminators"] = parts
        return cls(**config)


# `config.model` keys understood by `build_gfrnet`, with their defaults: the project's
# readings where paper and official code differ (docs/FIDELITY.md names every one).
MODEL_CONFIG_DEFAULTS = {
    "widths": PIX2PIX_WIDTHS,  # WarpNet and RecNet encoder widths; decoders mirror them
    "warpnet_widths": (),  # WarpNet's own widths; () = `widths`
    "recnet_widths": (),  # RecNet's own widths; () = `widths`
    "discriminator_widths": PATCHGAN_WIDTHS,  # global and local PatchGAN alike
    "norm": "batch",  # "batch" | "instance" | "none", every network
    "init_stddev": PIX2PIX_INIT_STDDEV,  # RecNet and discriminators: N(0, s) weights
    "warpnet_init_stddev": PIX2PIX_INIT_STDDEV,  # WarpNet (official code: 0.04)
    "flow_mode": "offset",  # WarpNet: "offset" (identity + scaled tanh) | "absolute" (Eq. 1)
    "flow_offset_scale": 1.0,  # WarpNet offset range, normalised units
    "dropout": 0.5,  # RecNet dropout on its first decoder layers (pix2pix; not in the paper)
    # Generator blocks (layers.EncoderDecoder; docs/FIDELITY.md "generator blocks"):
    "encoder_activation": "leaky_relu",  # "leaky_relu" (pix2pix, official) | "relu" (§3.1 text)
    "innermost_activation": "leaky_relu",  # "relu": official WarpNet, pix2pix
    "innermost_norm": False,  # True: BatchNorm on the innermost encoder layer (§3.1 text)
    "skip_activation": "encoder",  # RecNet skips: "encoder" | "relu" (pix2pix U-Net)
    "image_range": "signed",  # networks see [-1, 1] ("signed", tanh) or [0, 1] ("unit", sigmoid)
    "test_time_norm": "moving",  # BatchNorm at inference: "moving" | "per_image" (official test)
    "test_time_dropout": False,  # RecNet dropout at inference too (official test script)
    "loss_reduction": "project",  # "paper" | "official" | "project" (gfrnet_tf.losses)
    "tv_target": "displacement",  # TV on "flow" (Eq. 10) or "displacement" (Phi - identity)
    "d_loss_halved": False,  # PyTorch pix2pix's 0.5 on the discriminator loss (not in Eq. 7)
    "generator_loss": "non_saturating",  # or "minimax": log(1 - D(G)) as Eq. 7 writes it
    "detach_warped_guide": False,  # joint phase: WarpNet learns from the flow loss alone
    "symmetry_shift": DEFAULT_SYMMETRY_SHIFT,  # flow symmetry step, fraction of the image side
    "variant": "full",  # one of VARIANTS (§4.5 ablations)
    "local_size": 128,  # side of the local discriminator's landmark crop, pixels
    "local_margin": 0.1,  # landmark-box margin for the local crop (0 = §3.3's minimal box)
    "part_discriminators": False,  # eyes/nose/mouth PatchGANs (FACE_PARTS; not in the paper)
    "part_size": 32,  # side of each part crop, pixels
    "part_margin": 0.5,  # part-box margin: the eyes' landmark boxes are very flat
    "loss_weights": {},  # overrides of DEFAULT_LOSS_WEIGHTS by term name
    "real_label": 0.9,  # smoothed label of real samples
    "vgg_face_weights": "",  # .npz / keras-vggface .h5 file, "random" (benchmarks); "" = none
    "perceptual_layer": "conv4_3",  # VGG-Face layer of the perceptual loss
}


# `config.model` keys that shape the generator's blocks (WarpNet has no skips).
BLOCK_KEYS = ("encoder_activation", "innermost_activation", "innermost_norm", "skip_activation")
# RecNet's output activation for each `image_range`.
RECNET_OUTPUT = {"signed": "tanh", "unit": "sigmoid"}


# The `config.model` keys that give trained weights their meaning: what inference computes
# with them (architecture, blocks, image range, normalisation, flow parametrisation,
# ablation variant). Changing one after training changes every output while the weights
# still load, so checkpoints record them (`trained_settings`). Test-time switches
# (`test_time_norm`, `test_time_dropout`) and training-only keys (losses, discriminators,
# init) are not here.
TRAINED_SETTINGS = (
    "widths",
    "warpnet_widths",
    "recnet_widths",
    "norm",
    "flow_mode",
    "flow_offset_scale",
    "variant",
    "image_range",
    *BLOCK_KEYS,
)


def trained_settings(model_config) -> dict:
    """The `TRAINED_SETTINGS` of a `config.model` (defaults filled in), as plain JSON values."""
    config = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    resolved = {**MODEL_CONFIG_DEFAULTS, **config}
    return json.loads(json.dumps({key: resolved[key] for key in TRAINED_SETTINGS}))


def build_gfrnet(model_config) -> GFRNet:
    """Builds a `GFRNet` from `config.model` (an `ml_collections.ConfigDict` or a dict).

    Every key is optional, see `MODEL_CONFIG_DEFAULTS`; unknown keys raise
    `BadConfigError`, so a typo cannot silently fall back to a default. Without a VGG-Face
    weights file the perceptual term is off (training says so; inference never needs it).
    """
    config = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    _check_known_keys("config.model", config, MODEL_CONFIG_DEFAULTS)
    c = {**MODEL_CONFIG_DEFAULTS, **config}
    _check_test_time_mode(c)
    check_choice(c["image_range"], IMAGE_RANGES, "image_range", "config.model")
    blocks = {key: c[key] for key in BLOCK_KEYS}
    warpnet = None
    if c["variant"] not in ("no_warp", "no_guide"):
        warpnet = WarpNet(
            c["warpnet_widths"] or c["widths"],
            c["norm"],
            c["flow_mode"],
            c["flow_offset_scale"],
            init_stddev=c["warpnet_init_stddev"],
            test_time_norm=c["test_time_norm"],
            name="warpnet",
            **{key: value for key, value in blocks.items() if key != "skip_activation"},
        )
    perceptual_network = None
    if c["vgg_face_weights"]:
        vgg = VGGFace(c["perceptual_layer"], name="vgg_face")
        perceptual_network = load_vgg_face_weights(vgg, c["vgg_face_weights"])

    def discriminator(name):
        return PatchDiscriminator(
            c["discriminator_widths"], c["norm"], init_stddev=c["init_stddev"], name=name
        )

    parts = None
    if c["part_discriminators"]:
        parts = {part: discriminator(f"{part}_discriminator") for part in FACE_PARTS}
    return GFRNet(
        recnet=RecNet(
            c["recnet_widths"] or c["widths"],
            c["norm"],
            dropout=c["dropout"],
            init_stddev=c["init_stddev"],
            test_time_norm=c["test_time_norm"],
            test_time_dropout=c["test_time_dropout"],
            out_activation=RECNET_OUTPUT[c["image_range"]],
            name="recnet",
            **blocks,
        ),
        global_discriminator=discriminator("global_discriminator"),
        local_discriminator=discriminator("local_discriminator"),
        warpnet=warpnet,
        perceptual_network=perceptual_network,
        variant=c["variant"],
        local_size=c["local_size"],
        local_margin=c["local_margin"],
        part_discriminators=parts,
        part_size=c["part_size"],
        part_margin=c["part_margin"],
        loss_weights=dict(c["loss_weights"]),
        real_label=c["real_label"],
        loss_reduction=c["loss_reduction"],
        tv_target=c["tv_target"],
        d_loss_halved=c["d_loss_halved"],
        detach_warped_guide=c["detach_warped_guide"],
        symmetry_shift=c["symmetry_shift"],
        image_range=c["image_range"],
        generator_loss=c["generator_loss"],
    )


def _check_test_time_mode(config):
    check_test_time_norm(config["test_time_norm"], "config.model.test_time_norm")
    if config["test_time_dropout"] and not config["dropout"]:
        raise BadConfigError("config.model.test_time_dropout", "needs config.model.dropout > 0")


def _check_symmetry_term(weight, shift):
    """A negative weight would reward asymmetric flows; a step of more than half the image
    leaves too few pixels whose two reads are both on the image."""
    check_non_negative(weight, "model.loss_weights.flow_symmetry")
    if not is_real_number(shift) or not 0 < shift <= 0.5:
        raise BadConfigError(
            "model.symmetry_shift", f"must be a fraction of the side in (0, 0.5], got {shift!r}"
        )


def _check_known_keys(source, given, known):
    unknown = set(given) - set(known)
    if unknown:
        raise BadConfigError(source, f"unknown keys {sorted(unknown)}; known: {sorted(known)}")
