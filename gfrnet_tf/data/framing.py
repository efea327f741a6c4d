"""TFRecord framing: the record headers of a shard, checked in Python before TF reads it.

A record is 8 bytes of little-endian length, a 4-byte masked CRC-32C of those 8 bytes, the
payload and its masked CRC. TF's record reader trusts any length whose CRC is valid (a
crafted 2^35-byte length kills the process), so `check_record_headers` walks every record
header first (12 bytes per record, payloads skipped) and refuses a length that does not fit
in the file. `validation` and `pipeline` call it before a `TFRecordDataset` opens a shard.
"""

from __future__ import annotations

import os
import struct

import tensorflow as tf

from gfrnet_tf.errors import BadRecordError, first_line
from gfrnet_tf.io.paths import printable


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)  # reflected Castagnoli polynomial
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()
_HEADER = struct.Struct("<QI")  # length, masked CRC-32C of the 8 length bytes
_FOOTER_BYTES = 4  # masked CRC-32C of the payload


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: CRC-32C of `data`, rotated right by 15 bits plus a constant."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _open_shard(path):
    """A binary stream of a local file or a `tf.io.gfile` URL, its size in bytes and its
    modification time (ns)."""
    if "://" in path:
        try:
            stream = tf.io.gfile.GFile(path, "rb")
            return stream, stream.size(), tf.io.gfile.stat(path).mtime_nsec
        except tf.errors.NotFoundError:
            raise BadRecordError(printable(path), "no such shard") from None
        except tf.errors.OpError as error:
            raise BadRecordError(printable(path), f"cannot read: {first_line(error)}") from None
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        raise BadRecordError(printable(path), "no such shard") from None
    except IsADirectoryError:
        raise BadRecordError(printable(path), "is a folder, not a TFRecord shard") from None
    except OSError as error:
        raise BadRecordError(printable(path), f"cannot read: {error.strerror}") from None
    status = os.fstat(stream.fileno())
    return stream, status.st_size, status.st_mtime_ns


# Shards whose headers were found sound, by (path, size, mtime): start-up checks, every
# replica's dataset and every evaluation setting ask again, and a large dataset's scan
# takes tens of seconds. A shard that changes is scanned anew; a bad one is never kept.
_SOUND_SHARDS: dict[tuple, int] = {}


def check_record_headers(path) -> int:
    """Walks every record header of a TFRecord shard, skipping payloads; returns the count.

    Run before any `TFRecordDataset` opens the shard: TF's reader allocates whatever length
    a header with a valid CRC states. Raises `BadRecordError("<shard>: record <i>", problem)`
    for a header cut short, a length CRC that does not match, or a length that does not fit
    in the rest of the file; `BadRecordError(shard, ...)` for a missing, unreadable or empty
    shard. Payload CRCs are left to TF's reader (it checks them without over-allocating).
    """
    path = os.fspath(path)
    stream, size, modified = _open_shard(path)
    key = (path, size, modified)
    offset = count = 0
    with stream:
        if key in _SOUND_SHARDS:
            return _SOUND_SHARDS[key]
        while offset < size:
            where = f"{printable(path)}: record {count}"
            header = stream.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise BadRecordError(where, f"truncated header at byte {offset} of {size}")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise BadRecordError(
                    where, f"corrupt header at byte {offset} (length CRC mismatch)"
                )
            rest = size - offset - _HEADER.size
            if length + _FOOTER_BYTES > rest:
                raise BadRecordError(
                    where,
                    f"states a length of {length} bytes at byte {offset}, but only "
                    f"{max(rest - _FOOTER_BYTES, 0)} follow (truncated or crafted shard)",
                )
            offset += _HEADER.size + length + _FOOTER_BYTES
            stream.seek(offset)
            count += 1
    if count == 0:
        raise BadRecordError(printable(path), "no records (empty shard)")
    _SOUND_SHARDS[key] = count
    return count
