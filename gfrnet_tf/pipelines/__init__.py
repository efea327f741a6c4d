"""Offline data preparation: raw photos grouped by identity -> TFRecord training shards."""
