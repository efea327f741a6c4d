"""The export formats by name, and the TFLite calibration budget: free of TensorFlow, so
gfrnet-export's `--help` lists them without loading it. `tflite` and the command use them."""

QUANTIZATIONS = ("fp32", "fp16", "int8")
FORMATS = ("savedmodel", *(f"tflite_{quantization}" for quantization in QUANTIZATIONS), "onnx")
# Enough calibration batches for stable activation ranges, few enough to convert quickly.
CALIBRATION_STEPS = 32
