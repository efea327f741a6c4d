r"""gfrnet-export: a trained GFRNet as a TF Serving SavedModel and TFLite (LiteRT) files.

    gfrnet-export --model runs/full --output runs/export/gfrnet \
        --formats savedmodel,tflite_fp32,tflite_fp16,tflite_int8 \
        --calibration_data DATASET_DIR [--image_size N] [--version N] \
        [--precision float32|mixed_bfloat16|mixed_float16]

`--model` is a training workdir (its latest checkpoint), a `step-N.weights.h5` checkpoint
or a `.keras` file. The export's image size is the one the run trained at
(`--image_size` overrides it; a `.keras` file, which records none, needs it). Into
`--output` (TF Serving's model folder) go:
- `savedmodel`: `<version>/`, the SavedModel TF Serving loads (signatures
  `serving_default` on uint8 tensors and `serve_encoded` on JPEG/PNG bytes);
- `tflite_fp32|fp16|int8`: `gfrnet-v<version>-<quant>.tflite` (float `[-1, 1]` in/out,
  TFLite builtin ops only; TF Serving ignores these files). int8 is calibrated on
  `--calibration_steps` pairs of `--calibration_data` (a dataset folder's validation
  split, or a glob), read by the evaluation input pipeline;
- `onnx`: `gfrnet-v<version>.onnx` through Keras' ONNX export (needs `tf2onnx` and `onnx`).
`--precision` (savedmodel only; float32 by default) is what the SavedModel computes in
wherever it is served: mixed_bfloat16 for CPUs with bf16 instructions, recent GPUs and
TPUs; its inputs and outputs stay uint8 (the flow float32) and its weights float32.
`--version` defaults to one more than the highest existing version folder. Every file is
written under a temporary name and renamed, so a killed export leaves nothing complete-looking.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from absl import flags

from gfrnet_tf.apps.common import define_precision_flag, make_run
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.export.formats import CALIBRATION_STEPS, FORMATS
from gfrnet_tf.io.atomic import atomic_writer
from gfrnet_tf.io.paths import make_output_dir

MODEL = flags.DEFINE_string("model", None, ".keras file, step-N.weights.h5 checkpoint or workdir.")
OUTPUT = flags.DEFINE_string(
    "output", None, "Model folder, e.g. runs/export/gfrnet (TF Serving layout)."
)
EXPORT_FORMATS = flags.DEFINE_list("formats", ["savedmodel"], f"Comma-separated, of {FORMATS}.")
IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "Input height = width of the export (default: the size the run trained at)."
)
VERSION = flags.DEFINE_integer("version", None, "Version number (default: next free one).")
CALIBRATION_DATA = flags.DEFINE_string(
    "calibration_data",
    None,
    "Dataset folder or TFRecord glob of representative pairs for tflite_int8.",
)
CALIBRATION = flags.DEFINE_integer(
    "calibration_steps", CALIBRATION_STEPS, "Pairs used to calibrate tflite_int8."
)
REWRITE = flags.DEFINE_bool(
    "rewrite_transpose_conv",
    True,
    "TFLite: run the decoders' transposed convolutions as exact phase convolutions (faster).",
)
PRECISION = define_precision_flag(
    "float32",
    "What the SavedModel computes in where it is served (bf16: CPUs with bf16 "
    "instructions, recent GPUs, TPUs); savedmodel only.",
)
flags.mark_flags_as_required(["model", "output"])


def check_formats(formats, calibration_data, precision="float32"):
    """Raises `BadConfigError` for unknown formats, int8 without calibration data, or a
    compute precision other than float32 for anything but the SavedModel."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise BadConfigError("--formats", f"unknown {unknown}; choose from {FORMATS}")
    others = [name for name in formats if name != "savedmodel"]
    if precision != "float32" and others:
        raise BadConfigError(
            "--precision",
            f"{precision} applies to the savedmodel format only, not {', '.join(others)} "
            "(TFLite has its own fp16 and int8 variants)",
        )
    if "tflite_int8" in formats and not calibration_data:
        raise BadConfigError(
            "--formats", "tflite_int8 needs --calibration_data (TFRecord shards of face pairs)"
        )


def calibration_inputs(data, image_size, steps):
    """`steps` `{"degraded", "guide"}` batches of 1 from the evaluation input pipeline."""
    from gfrnet_tf.data import PreparedDataset, default_input_config, make_dataset

    dataset = PreparedDataset.open(data, glob_split="val")
    split = "val" if dataset.has("val") else dataset.splits[0]
    config = default_input_config()
    config.image_size = image_size
    config.batch_size = 1
    batches = make_dataset(
        dataset.files(split), dataset.input_config(config, split), training=False
    )
    return list(itertools.islice((inputs for inputs, _ in batches.as_numpy_iterator()), steps))


def export_size(trained) -> int:
    """`--image_size`, else the size the model was trained at."""
    size = IMAGE_SIZE.value or trained.image_size
    if size is None:
        raise BadConfigError(
            trained.source, "records no image size (a .keras file): pass --image_size"
        )
    return size


def main(argv):
    from gfrnet_tf.export import export_savedmodel
    from gfrnet_tf.export.onnx_export import export_onnx
    from gfrnet_tf.export.savedmodel import next_version
    from gfrnet_tf.export.tflite import convert_to_tflite
    from gfrnet_tf.loading import load_gfrnet

    del argv
    formats = EXPORT_FORMATS.value
    check_formats(formats, CALIBRATION_DATA.value, PRECISION.value)
    output = Path(OUTPUT.value)
    version = VERSION.value if VERSION.value is not None else next_version(output)
    trained = load_gfrnet(MODEL.value, PRECISION.value)
    model, size = trained.model, export_size(trained)
    print(f"exporting {trained.source} at {size}x{size} in {PRECISION.value}", flush=True)
    make_output_dir(output)
    for index, export_format in enumerate(formats, 1):
        print(f"[{index}/{len(formats)}] {export_format} ...", flush=True)
        if export_format == "savedmodel":
            path = export_savedmodel(model, output, size, version)
        elif export_format == "onnx":
            path = export_onnx(model, output / f"gfrnet-v{version}.onnx", size)
        else:
            quantization = export_format.removeprefix("tflite_")
            data = None
            if quantization == "int8":
                data = calibration_inputs(CALIBRATION_DATA.value, size, CALIBRATION.value)
            flatbuffer = convert_to_tflite(
                model,
                size,
                quantization,
                representative_data=data,
                rewrite_transpose_conv=REWRITE.value,
            )
            path = output / f"gfrnet-v{version}-{quantization}.tflite"
            with atomic_writer(path) as stream:
                stream.write(flatbuffer)
        print(f"[{index}/{len(formats)}] {export_format}: {path}", flush=True)


run = make_run(main)

if __name__ == "__main__":
    run()
