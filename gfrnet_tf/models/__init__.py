"""GFRNet's networks as Keras 3 models, each taking one concatenated NHWC tensor."""

from gfrnet_tf.models.discriminator import PatchDiscriminator
from gfrnet_tf.models.gfrnet import GFRNet, build_gfrnet
from gfrnet_tf.models.recnet import RecNet
from gfrnet_tf.models.vgg_face import VGGFace, load_vgg_face_weights
from gfrnet_tf.models.warpnet import WarpNet

__all__ = [
    "WarpNet",
    "RecNet",
    "PatchDiscriminator",
    "GFRNet",
    "build_gfrnet",
    "VGGFace",
    "load_vgg_face_weights",
]
