"""GFRNet (Li et al., ECCV 2018): guided blind face restoration in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
