"""File input/output at the library's uint8 RGB boundary, written atomically."""

from gfrnet_tf.io.atomic import atomic_path, atomic_writer
from gfrnet_tf.io.images import decode_image, load_image, save_image

__all__ = ["atomic_path", "atomic_writer", "decode_image", "load_image", "save_image"]
