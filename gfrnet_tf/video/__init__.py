"""Guided restoration of video clips: faces tracked, restored in batches as the clip streams.

`streaming.VideoRestorer` restores frames with a `PhotoRestorer`'s model and guides;
`clip.restore_clip` runs it on a file (PyAV: decode, encode, audio copied);
`gfrnet_tf.io.media.is_video_file` tells videos from photos. PyAV comes with the `video`
extra, so this package imports nothing itself.
"""
