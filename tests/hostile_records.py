"""A corpus of crafted TFRecord shards: hostile headers, payloads and image bombs.

Each case is one shard whose first record is a valid pair (so the bad one is record 1,
and a check that stops at the first record misses it) unless the damage is to the file
itself. `write_corpus(folder)` writes them all and returns `{case: (path, record)}`, where
`record` is the index an error must name (None: the error is about the whole shard).
Bytes are built by hand (struct, zlib) so the corpus does not depend on the code under test.
"""

import functools
import struct
import zlib

import numpy as np

HUGE_LENGTH = 2**35


def crc32c(data: bytes) -> int:
    """Bitwise CRC-32C (Castagnoli), independent of the project's table-driven one."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes, length=None) -> bytes:
    """One TFRecord record: length, its masked CRC, payload, the payload's masked CRC."""
    length_bytes = struct.pack("<Q", len(payload) if length is None else length)
    return (
        length_bytes
        + struct.pack("<I", masked(length_bytes))
        + payload
        + struct.pack("<I", masked(payload))
    )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=None)
def png_bomb(side=12000) -> bytes:
    """A valid grey `side x side` PNG of zeros: ~140 KB that decodes to side^2 * 3 bytes."""
    compressor = zlib.compressobj(9)
    row = bytes(1 + side)  # filter byte 0, then one zero per pixel
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_with_frame_size(jpeg: bytes, height: int, width: int) -> bytes:
    """`jpeg` with the height and width of its SOF0/SOF2 frame header replaced."""
    data = bytearray(jpeg)
    position = 2
    while position < len(data):
        marker, length = (
            data[position + 1],
            struct.unpack(">H", data[position + 2 : position + 4])[0],
        )
        if marker in (0xC0, 0xC2):
            data[position + 5 : position + 9] = struct.pack(">HH", height, width)
            return bytes(data)
        position += 2 + length
    raise ValueError("no SOF0/SOF2 marker")


def write_corpus(folder, valid_record: bytes, make_record, small_jpeg: bytes):
    """Writes every case into `folder`; returns `{case: (path, record index or None)}`.

    `valid_record` is one good serialised pair; `make_record(target_bytes)` a good pair
    whose target is the given encoded image; `small_jpeg` a valid JPEG to patch.
    """
    good = frame(valid_record)
    rng = np.random.default_rng(0)
    cases = {
        "huge_length": (good + frame(b"x" * 16, length=HUGE_LENGTH), 1),
        "bad_length_crc": (good + good[:8] + bytes([good[8] ^ 1]) + good[9:], 1),
        "truncated_header": (good + good[:5], 1),
        "truncated_payload": (good + good[: len(good) // 2], 1),
        "empty": (b"", None),
        "random_payload": (good + frame(rng.integers(0, 256, 300, dtype=np.uint8).tobytes()), 1),
        "non_example": (good + frame(b"\xff\xfe not a tf.train.Example \x80\x81"), 1),
        "png_bomb": (good + frame(make_record(png_bomb())), 1),
        "jpeg_huge_sof": (
            good + frame(make_record(jpeg_with_frame_size(small_jpeg, 65000, 65000))),
            1,
        ),
    }
    written = {}
    for case, (data, record) in cases.items():
        path = folder / f"{case}.tfrecord"
        path.write_bytes(data)
        written[case] = (path, record)
    return written
