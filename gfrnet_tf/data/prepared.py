"""A prepared dataset folder as one handle: its splits, record counts, image size and mode.

`gfrnet-prepare --output DIR` (and the demo's sample writer) make DIR a dataset, as TFDS's
`dataset_info.json` does: `DIR/manifest.json` states

    {"format": "gfrnet_tf.prepared", "schema_version": 1, "image_size": 256,
     "synthetic_pose": false,
     "splits": {"train": {"shards": ["train-00000-of-00016.tfrecord", ...], "records": 1234},
                "val": {...}, "test": {...}}}

with shard names relative to DIR (and, from `gfrnet-prepare`, a top-level `"shards": {name:
count}`). Every command then takes `--data DIR`: the training split, the validation split
for the LR schedule, steps per epoch from the real pair count, and synthetic pose from the
manifest. Globs keep working for shards without a manifest
(`PreparedDataset.from_patterns`), with nothing known but the files.

A manifest is not trusted further than it can be checked: a shard listed twice or in two
splits (test data leaking into training) is refused when the folder is opened, and a
split's stated counts are compared with its shards' record headers (the scan that guards
TF's reader anyway) the first time the split is used.
"""

from __future__ import annotations

import copy
import json

import tensorflow as tf

from gfrnet_tf.data.framing import check_record_headers
from gfrnet_tf.data.pipeline import list_shards
from gfrnet_tf.data.records import SCHEMA_VERSION
from gfrnet_tf.errors import BadConfigError, first_line
from gfrnet_tf.io.paths import printable

FORMAT = "gfrnet_tf.prepared"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 2**20  # a million shards' names; more is not a manifest
_REPREPARE = "the manifest does not describe these shards; run gfrnet-prepare again"


class PreparedDataset:
    """The splits of a dataset folder (or of glob patterns) and what is known about them.

    `PreparedDataset(directory)` reads `directory/manifest.json`; `from_patterns` wraps globs.
    `records(split)` and `image_size` are None when no manifest states them, and so is
    `synthetic_pose` for globs given without the flag.
    """

    def __init__(self, directory):
        self.source = str(directory).rstrip("/") or "/"
        manifest = _read_manifest(self.source)
        self.image_size = _positive_int(manifest, "image_size", self.source)
        self.synthetic_pose = manifest.get("synthetic_pose", False)
        if not isinstance(self.synthetic_pose, bool):
            raise BadConfigError(
                _manifest_path(self.source), "synthetic_pose must be true or false"
            )
        self._files, self._records, self._verified = {}, {}, set()
        path = _manifest_path(self.source)
        splits = manifest.get("splits")
        if not isinstance(splits, dict) or not splits:
            raise BadConfigError(path, "no splits listed")
        listed_in = {}  # shard name -> the split that lists it
        for split, entry in splits.items():
            shards = entry.get("shards") if isinstance(entry, dict) else None
            if not isinstance(shards, list) or not all(isinstance(s, str) for s in shards):
                raise BadConfigError(path, f"split {split!r}: no shard list")
            for name in shards:
                if not _is_file_name(name):
                    raise BadConfigError(
                        path,
                        f"split {split!r}: shard name {printable(name)} is not the name of a "
                        "file of the folder",
                    )
                if name in listed_in:
                    where = (
                        f"split {split!r} lists shard {name!r} twice"
                        if listed_in[name] == split
                        else f"shard {name!r} is listed in split {listed_in[name]!r} "
                        f"and in {split!r}"
                    )
                    raise BadConfigError(
                        path,
                        f"{where}: a record would count twice, or test data would leak into "
                        "training; list each shard once",
                    )
                listed_in[name] = split
            self._files[split] = [f"{self.source}/{name}" for name in sorted(shards)]
            self._records[split] = _positive_int(entry, "records", path, allow_zero=True)
        self._shard_records = (
            manifest.get("shards") if isinstance(manifest.get("shards"), dict) else {}
        )

    @classmethod
    def from_patterns(cls, patterns: dict, synthetic_pose: bool | None = None) -> "PreparedDataset":
        """Splits given as glob patterns (`{"train": "data/train-*.tfrecord", ...}`);
        `synthetic_pose` None leaves the config's setting."""
        dataset = cls.__new__(cls)
        dataset.source = ", ".join(patterns.values())
        dataset.image_size = None
        dataset.synthetic_pose = synthetic_pose
        dataset._files = {split: list_shards(pattern) for split, pattern in patterns.items()}
        dataset._records = dict.fromkeys(patterns)
        return dataset

    @classmethod
    def open(
        cls,
        data: str,
        glob_split: str = "train",
        synthetic_pose=None,
        other_patterns: dict | None = None,
    ) -> "PreparedDataset":
        """What a `--data` flag names: a dataset folder, or a glob of the `glob_split` split
        (with `other_patterns` for more splits). `synthetic_pose=None` takes the manifest's
        mode; a bool must agree with it (globs have no manifest: it is the mode)."""
        other_patterns = {k: v for k, v in (other_patterns or {}).items() if v}
        if not tf.io.gfile.isdir(data):
            return cls.from_patterns({glob_split: data, **other_patterns}, synthetic_pose)
        if other_patterns:
            raise BadConfigError(
                data,
                "a dataset folder lists its own splits; drop the globs "
                f"for {', '.join(other_patterns)}",
            )
        dataset = cls(data)
        if synthetic_pose is not None and synthetic_pose != dataset.synthetic_pose:
            raise BadConfigError(
                data,
                f"its manifest says synthetic_pose={str(dataset.synthetic_pose).lower()}: "
                "drop the flag that contradicts it",
            )
        return dataset

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self._files)

    def has(self, split: str) -> bool:
        return split in self._files

    def files(self, split: str) -> list[str]:
        self._check_split(split)
        if not self._files[split]:
            raise BadConfigError(self.source, f"split {split!r} has no shards")
        self._verify(split)
        return list(self._files[split])

    def records(self, split: str) -> int | None:
        self._check_split(split)
        self._verify(split)
        return self._records[split]

    def _verify(self, split: str) -> None:
        """The counts the manifest states for `split` against its shards' record headers
        (which also refuses a missing or hostile shard by name)."""
        if self._records[split] is None or split in self._verified:
            return
        found = 0
        for path in self._files[split]:
            count = check_record_headers(path)
            name = path.rsplit("/", 1)[1]
            stated = self._shard_records.get(name)
            if stated is not None and stated != count:
                raise BadConfigError(
                    _manifest_path(self.source),
                    f"states {stated!r} records for shard {name}, which holds {count} "
                    f"(counted from its record headers): {_REPREPARE}",
                )
            found += count
        if found != self._records[split]:
            raise BadConfigError(
                _manifest_path(self.source),
                f"split {split!r} states {self._records[split]} records, its shards hold "
                f"{found} (counted from their record headers): {_REPREPARE}",
            )
        self._verified.add(split)

    def input_config(self, input_config, split: str | None = None):
        """A copy of `config.input` for this data: synthetic pose as the manifest says
        (whatever the config that trained a model on other data said).

        Records larger than the model's size are resized by the pipeline; smaller ones
        would be upscaled, which no training or evaluation should do silently.
        """
        if split is not None:
            self._check_split(split)
        config = copy.deepcopy(input_config)
        if self.synthetic_pose is not None:
            config.synthetic_pose.enabled = self.synthetic_pose
        if self.image_size is not None and config.image_size > self.image_size:
            raise BadConfigError(
                self.source,
                f"records are {self.image_size} px, smaller than the model's "
                f"{config.image_size} px",
            )
        return config

    def _check_split(self, split):
        if split not in self._files:
            raise BadConfigError(
                self.source, f"no split {split!r}; it has {', '.join(self._files)}"
            )

    def __repr__(self):
        return f"PreparedDataset({self.source!r}, splits={self.splits})"


def write_manifest(directory, splits: dict, image_size: int, synthetic_pose: bool, **extra) -> dict:
    """Writes `directory/manifest.json` atomically; `splits` maps a split to
    `{"shards": [names], "records": n}`. Returns the manifest."""
    manifest = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "image_size": int(image_size),
        "synthetic_pose": bool(synthetic_pose),
        "splits": splits,
        **extra,
    }
    path = _manifest_path(directory)
    temporary = f"{path}.tmp"
    with tf.io.gfile.GFile(temporary, "wb") as stream:
        stream.write(json.dumps(manifest, indent=1).encode())
    tf.io.gfile.rename(temporary, path, overwrite=True)
    return manifest


def _manifest_path(directory) -> str:
    return f"{str(directory).rstrip('/')}/{MANIFEST}"


def _read_manifest(directory: str) -> dict:
    path = _manifest_path(directory)
    if not tf.io.gfile.exists(path):
        raise BadConfigError(
            directory,
            f"no {MANIFEST}: not a dataset folder from gfrnet-prepare "
            "(pass a glob of TFRecord shards instead)",
        )
    try:
        if tf.io.gfile.stat(path).length > MAX_MANIFEST_BYTES:
            raise BadConfigError(path, f"larger than {MAX_MANIFEST_BYTES} bytes")
        with tf.io.gfile.GFile(path, "rb") as stream:
            manifest = json.loads(stream.read())
    except (tf.errors.OpError, ValueError) as error:
        raise BadConfigError(path, f"not a readable manifest: {first_line(error)}") from None
    except RecursionError:
        raise BadConfigError(path, "not a manifest: its JSON is nested too deeply") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadConfigError(path, f"not a {FORMAT} manifest")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise BadConfigError(
            path,
            f"schema version {manifest.get('schema_version')!r}; "
            f"this gfrnet_tf reads version {SCHEMA_VERSION}",
        )
    return manifest


def _is_file_name(name: str) -> bool:
    """A plain name of a file in the folder: no folder part, not hidden, no control bytes."""
    return bool(name) and "/" not in name and not name.startswith(".") and name.isprintable()


def _positive_int(mapping: dict, key: str, source, allow_zero=False):
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise BadConfigError(
            source,
            f"{key} must be a {'non-negative' if allow_zero else 'positive'} "
            f"integer, got {value!r}",
        )
    return value
