"""File input/output at the library's uint8 RGB boundary."""

from gfrnet_tf.io.images import decode_image, load_image, save_image

__all__ = ["decode_image", "load_image", "save_image"]
