"""The seven GFRNet rows of Table 1 (§4.5) as config changes, in one table.

`TABLE1_ROWS` maps the paper's row name to the `config.model.variant` it trains and a
factor on the generator's channel widths: -W2 and -WG2 are -W and -WG "by increasing the
channels ... to 2 times", so that their parameter count matches Full's (which has a
WarpNet beside its RecNet). The discriminators keep their widths (the paper only widens
the generator). Variants without a flow loss (-F, -W, -WG and the wide ones) have nothing
to pre-train, so their WarpNet pre-training epochs are set to 0.
"""

from __future__ import annotations

import copy
import dataclasses

from gfrnet_tf.errors import BadConfigError


@dataclasses.dataclass(frozen=True)
class Variant:
    """One Table 1 row: the model variant and how much wider than the base config it is."""

    folder: str  # the variant's training workdir inside the study's
    model_variant: str
    width_factor: int = 1
    description: str = ""

    @property
    def has_flow_loss(self) -> bool:
        return self.model_variant in ("full", "random_guide")


TABLE1_ROWS = {
    "Full": Variant("full", "full", description="the full GFRNet"),
    "R": Variant("random_guide", "random_guide", description="a random guide of another identity"),
    "-F": Variant("no_flow_loss", "no_flow_loss", description="no flow loss (landmark + TV)"),
    "-W": Variant("no_warp", "no_warp", description="no WarpNet: RecNet takes I_d and I_g"),
    "-W2": Variant("no_warp_x2", "no_warp", 2, "-W with twice the channels"),
    "-WG": Variant(
        "no_guide", "no_guide", description="no WarpNet, no guide: RecNet takes I_d only"
    ),
    "-WG2": Variant("no_guide_x2", "no_guide", 2, "-WG with twice the channels"),
}
# The generator's width keys in `config.model` (those present are scaled).
GENERATOR_WIDTH_KEYS = ("widths", "warpnet_widths", "recnet_widths")


def variant_config(config, row: str):
    """A copy of a training config changed into Table 1 row `row` (e.g. "-W2")."""
    if row not in TABLE1_ROWS:
        raise BadConfigError(
            "--variants", f"{row!r} is not a Table 1 row ({', '.join(TABLE1_ROWS)})"
        )
    variant = TABLE1_ROWS[row]
    config = copy.deepcopy(config)
    config.model.variant = variant.model_variant
    for key in GENERATOR_WIDTH_KEYS:
        if key in config.model and config.model[key] is not None:
            config.model[key] = tuple(int(w) * variant.width_factor for w in config.model[key])
    if not variant.has_flow_loss:
        config.train.warp_pretrain_epochs = 0
    return config
