"""Which Keras dtype policy a run computes in, on the device it has.

`config.train.precision` (and `--precision` of `gfrnet-train`, `gfrnet-restore`,
`gfrnet-evaluate`, `gfrnet-export`) names one of `PRECISIONS`. The networks then compute
in that policy's dtype; their variables, checkpoints and exports' inputs and outputs stay
float32 whatever it is, and so do the float32 islands the models keep (`OUTPUT_DTYPE`
output layers, the warp, the flow, the losses, the metrics, the landmark geometry).

What each request becomes (`choose`), on a CPU / GPU / TPU:
- `float32`: float32 everywhere;
- `mixed_bfloat16`: bf16 on a CPU with bf16 instructions, on a GPU of compute capability
  8.0 or more, and on a TPU; float32 on other CPUs and GPUs, saying so;
- `mixed_float16`: float16 with loss scaling on a GPU; refused on a CPU (no float16
  kernels: slower than float32) and on a TPU (it computes in bf16).

bfloat16 has float32's exponent range, so it needs no loss scaling; float16 does
(`needs_loss_scaling`). A CPU's bf16 support is read from `/proc/cpuinfo` (x86:
`avx512_bf16` or `amx_bf16`; Arm: the `bf16` feature), never assumed: without it
TensorFlow emulates bf16 and runs slower than float32. `GFRNET_CPU_BF16=1` (or `0`)
overrides the detection, for a virtual machine that hides the host's flags.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os

from absl import logging

from gfrnet_tf.errors import BadConfigError

FLOAT32, FLOAT16, BFLOAT16 = "float32", "mixed_float16", "mixed_bfloat16"
PRECISIONS = (FLOAT32, FLOAT16, BFLOAT16)
DEVICE_KINDS = ("CPU", "GPU", "TPU")
CPUINFO = "/proc/cpuinfo"
# x86: AVX-512 BF16 (Intel Cooper Lake+, AMD Zen 4+) or AMX (Intel Sapphire Rapids+).
X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Arm: the BF16 extension (Armv8.6; Neoverse V1/V2, e.g. AWS Graviton3/4).
ARM_BF16_FEATURES = ("bf16",)
CPU_BF16_OVERRIDE = "GFRNET_CPU_BF16"
# Ampere (8.0) is the first GPU generation with bf16 tensor cores.
GPU_BF16_COMPUTE_CAPABILITY = (8, 0)


@dataclasses.dataclass(frozen=True)
class Precision:
    """`requested` as run on `device`: `policy` is the Keras policy used, `note` says why it
    differs from the request ("" when it does not)."""

    requested: str
    policy: str
    device: str
    note: str = ""

    @property
    def needs_loss_scaling(self) -> bool:
        return needs_loss_scaling(self.policy)

    def describe(self) -> str:
        """One line for the log: what runs, and why if it is not what was asked."""
        text = f"precision {self.policy} on {self.device}"
        return f"{text} ({self.note})" if self.note else text


def needs_loss_scaling(policy: str) -> bool:
    """Only float16 underflows small gradients; bfloat16 has float32's exponent range."""
    return policy == FLOAT16


def check_precision(name, source="config.train.precision") -> str:
    """`name` if it is one of `PRECISIONS`, else `BadConfigError`."""
    if name not in PRECISIONS:
        raise BadConfigError(source, f"{name!r} is not one of {', '.join(PRECISIONS)}")
    return name


def cpu_bf16_support(cpuinfo_text=None, environ=None) -> tuple[bool, str]:
    """(native bf16 on this CPU, how that is known): the override, or `/proc/cpuinfo`'s flags."""
    environ = os.environ if environ is None else environ
    override = environ.get(CPU_BF16_OVERRIDE, "").strip()
    if override in ("0", "1"):
        return override == "1", f"{CPU_BF16_OVERRIDE}={override}"
    if cpuinfo_text is None:
        try:
            with open(CPUINFO, encoding="utf-8", errors="replace") as stream:
                cpuinfo_text = stream.read()
        except OSError:
            return False, f"{CPUINFO} unreadable"
    flags = set()
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    found = sorted(flags & {*X86_BF16_FLAGS, *ARM_BF16_FEATURES})
    if found:
        return True, f"{CPUINFO}: {', '.join(found)}"
    return False, f"no {' / '.join((*X86_BF16_FLAGS, *ARM_BF16_FEATURES))} in {CPUINFO}"


def gpu_bf16_support() -> tuple[bool, str]:
    """(every visible GPU has bf16 tensor cores, the compute capabilities seen)."""
    import tensorflow as tf  # here: the commands' --help and flag checks stay TensorFlow-free

    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability")
        for gpu in tf.config.list_physical_devices("GPU")
    ]
    known = [c for c in capabilities if c]
    native = bool(known) and len(known) == len(capabilities)
    native = native and min(known) >= GPU_BF16_COMPUTE_CAPABILITY
    shown = ", ".join(f"{c[0]}.{c[1]}" for c in known) or "unknown"
    return native, f"compute capability {shown}"


def device_kind() -> str:
    """ "TPU", "GPU" or "CPU": the kind of device the networks run on here."""
    import tensorflow as tf

    for kind in ("TPU", "GPU"):
        if tf.config.list_logical_devices(kind):
            return kind
    return "CPU"


def choose(requested, device=None, bf16_support=None, source="config.train.precision"):
    """The `Precision` that `requested` becomes on `device` (default: this machine's).

    `bf16_support` is `(native, how known)` for the device (default: detected). The
    module docstring's table is this function.
    """
    check_precision(requested, source)
    device = device or device_kind()
    if device not in DEVICE_KINDS:
        raise ValueError(f"device kind {device!r} is not one of {DEVICE_KINDS}")
    if requested == FLOAT32:
        return Precision(requested, FLOAT32, device)
    if requested == FLOAT16:
        if device == "CPU":
            raise BadConfigError(
                source,
                "mixed_float16 needs a GPU: this CPU has no float16 kernels, so it would "
                "run slower than float32; use mixed_bfloat16 or float32",
            )
        if device == "TPU":
            raise BadConfigError(source, "TPUs compute in bfloat16: use mixed_bfloat16")
        return Precision(requested, FLOAT16, device, "with loss scaling")
    if device == "TPU":
        return Precision(requested, BFLOAT16, device)
    if bf16_support is None:
        bf16_support = cpu_bf16_support() if device == "CPU" else gpu_bf16_support()
    native, how = bf16_support
    if native:
        return Precision(requested, BFLOAT16, device, f"native bf16: {how}")
    return Precision(
        requested,
        FLOAT32,
        device,
        f"no native bf16 ({how}), where it would run slower than float32: computing in float32",
    )


def legacy_mixed_precision(device=None) -> Precision:
    """What the old `--mixed_precision` flag meant: float16 on GPUs, float32 elsewhere."""
    device = device or device_kind()
    if device == "GPU":
        return Precision(FLOAT16, FLOAT16, device, "--mixed_precision, with loss scaling")
    return Precision(FLOAT16, FLOAT32, device, f"--mixed_precision ignored: no GPU ({device})")


def log_choice(precision: Precision) -> None:
    """The choice in the log; a warning when it is not what was asked."""
    if precision.policy == precision.requested:
        logging.info("%s", precision.describe())
    else:
        logging.warning("%s", precision.describe())


@contextlib.contextmanager
def policy_scope(policy: str):
    """Layers built inside compute under `policy`; the previous global policy comes back after."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
