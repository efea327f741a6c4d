"""The start-up header scan (`framing.check_record_headers`) against TF reading the same shard.

    python -m benchmarks.record_headers [--records 20000] [--payload 20000] [--rounds 3]

Writes one shard of `--records` records of `--payload` bytes (the size of a 256 px PNG
pair is ~200 KB; smaller payloads make the scan's per-record cost stand out), then times,
best of `--rounds`, the Python scan of every header and a plain `TFRecordDataset` pass
over the records (no parsing): the scan's cost as a fraction of just reading the data.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import tensorflow as tf

from gfrnet_tf.data.framing import check_record_headers


def _best(function, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--payload", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "shard.tfrecord")
        payload = os.urandom(args.payload)
        with tf.io.TFRecordWriter(path) as writer:
            for _ in range(args.records):
                writer.write(payload)
        scan = _best(lambda: check_record_headers(path), args.rounds)
        read = _best(lambda: sum(1 for _ in tf.data.TFRecordDataset(path)), args.rounds)
    print(
        f"{args.records} records x {args.payload} B: header scan {scan * 1e3:.0f} ms "
        f"({scan / args.records * 1e6:.1f} us/record), TF read {read * 1e3:.0f} ms, "
        f"ratio scan/read {scan / read:.2f}"
    )


if __name__ == "__main__":
    main()
