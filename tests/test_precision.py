"""Compute precision: what each request becomes per device kind, bf16 detection, the old
switch, config checks. The numerics under each policy are `test_mixed_precision.py`."""

import os
import subprocess
import sys

import keras
import ml_collections
import pytest

from gfrnet_tf import precision
from gfrnet_tf.configs import load_config
from gfrnet_tf.errors import BadConfigError
from gfrnet_tf.training import fit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BF16 = precision.BFLOAT16
# This VM's own flags line (AMD EPYC, AVX2, no AVX-512) and two that have bf16.
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx f16c fma avx2 sha_ni vaes\n"
ZEN4 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_vnni avx512_bf16 vaes\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f amx_bf16 amx_tile amx_int8\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16 svebf16\nCPU part\t: 0xd40\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd fphp asimdhp asimddp\n"


# ------------------------------------------------------------------ the policy per device
@pytest.mark.parametrize(
    "device, support, expected",
    [
        ("CPU", (True, "avx512_bf16"), BF16),
        ("CPU", (False, "no avx512_bf16"), precision.FLOAT32),
        ("GPU", (True, "compute capability 8.0"), BF16),
        ("GPU", (False, "compute capability 7.5"), precision.FLOAT32),
        ("TPU", None, BF16),
    ],
)
def test_bf16_runs_where_the_device_has_it_and_float32_elsewhere_saying_why(
    device, support, expected
):
    chosen = precision.choose(BF16, device, support)
    assert (chosen.requested, chosen.policy, chosen.device) == (BF16, expected, device)
    assert not chosen.needs_loss_scaling  # bf16 has float32's range: never a loss scale
    if expected == precision.FLOAT32:
        assert "no native bf16" in chosen.note and support[1] in chosen.note
        assert "computing in float32" in chosen.describe()
    assert "\n" not in chosen.describe()


@pytest.mark.parametrize("device", precision.DEVICE_KINDS)
def test_float32_is_float32_on_every_device(device):
    chosen = precision.choose(precision.FLOAT32, device, (False, "-"))
    assert (chosen.policy, chosen.note, chosen.needs_loss_scaling) == ("float32", "", False)


def test_float16_runs_on_gpus_with_loss_scaling_and_is_refused_elsewhere_in_one_line():
    chosen = precision.choose(precision.FLOAT16, "GPU")
    assert chosen.policy == precision.FLOAT16 and chosen.needs_loss_scaling
    for device, reason in (("CPU", "needs a GPU"), ("TPU", "TPUs compute in bfloat16")):
        with pytest.raises(BadConfigError) as raised:
            precision.choose(precision.FLOAT16, device, source="--precision")
        assert str(raised.value).startswith("--precision: ")
        assert reason in str(raised.value) and "\n" not in str(raised.value)


def test_the_old_mixed_precision_switch_keeps_its_meaning():
    assert precision.legacy_mixed_precision("GPU").policy == precision.FLOAT16
    on_cpu = precision.legacy_mixed_precision("CPU")
    assert on_cpu.policy == precision.FLOAT32 and "ignored" in on_cpu.note
    train = load_config("smoke").train
    assert fit.choose_precision(train, mixed_precision=True).policy == precision.FLOAT32
    train.precision = BF16
    with pytest.raises(BadConfigError, match="use --precision alone"):
        fit.choose_precision(train, mixed_precision=True)


def test_unknown_precisions_are_config_errors_and_old_configs_mean_float32():
    train = load_config("smoke").train.to_dict()
    train["precision"] = "bfloat16"  # a config.json may hold anything
    with pytest.raises(BadConfigError) as raised:
        fit.check_train_config(ml_collections.ConfigDict(train))
    assert str(raised.value).startswith("config.train.precision: 'bfloat16' is not one of")
    del train["precision"]  # written before the key existed
    assert fit.train_precision(ml_collections.ConfigDict(train)) == precision.FLOAT32
    assert {load_config(name).train.precision for name in ("paper", "recommended")} == {"float32"}


@pytest.mark.parametrize(
    "cpuinfo, native, shown",
    [
        (AVX2_ONLY, False, "no avx512_bf16 / amx_bf16 / bf16 in /proc/cpuinfo"),
        (ZEN4, True, "/proc/cpuinfo: avx512_bf16"),
        (SAPPHIRE_RAPIDS, True, "/proc/cpuinfo: amx_bf16"),
        (GRAVITON3, True, "/proc/cpuinfo: bf16"),
        (GRAVITON2, False, "no avx512_bf16"),
    ],
)
def test_cpu_bf16_is_detected_from_the_cpu_flags(cpuinfo, native, shown):
    found, how = precision.cpu_bf16_support(cpuinfo, environ={})
    assert found is native and how.startswith(shown)


def test_the_detection_can_be_overridden_for_a_vm_that_hides_the_host_flags():
    override = precision.CPU_BF16_OVERRIDE
    assert precision.cpu_bf16_support(AVX2_ONLY, {override: "1"}) == (True, f"{override}=1")
    assert precision.cpu_bf16_support(ZEN4, {override: "0"}) == (False, f"{override}=0")
    assert precision.cpu_bf16_support(ZEN4, {override: "yes"})[0]  # not 0/1: detect


def test_this_machine_is_detected_from_its_own_cpuinfo(monkeypatch):
    monkeypatch.delenv(precision.CPU_BF16_OVERRIDE, raising=False)
    with open(precision.CPUINFO) as stream:
        flags = stream.read().split()
    native, _ = precision.cpu_bf16_support()
    assert native == bool({"avx512_bf16", "amx_bf16", "bf16"} & set(flags))


def test_policy_scope_builds_under_the_policy_and_restores_the_previous_one():
    with precision.policy_scope(BF16):
        layer = keras.layers.Dense(2)
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(RuntimeError), precision.policy_scope(BF16):
        raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"


def test_inference_commands_say_when_bf16_falls_back(monkeypatch, capsys):
    from gfrnet_tf.apps.common import inference_policy

    monkeypatch.setenv(precision.CPU_BF16_OVERRIDE, "0")
    assert inference_policy(BF16) == precision.FLOAT32
    said = capsys.readouterr().out.strip()
    assert said.startswith("precision float32 on CPU (no native bf16 (GFRNET_CPU_BF16=0)")
    monkeypatch.setenv(precision.CPU_BF16_OVERRIDE, "1")
    assert inference_policy(BF16) == BF16
    assert inference_policy(precision.FLOAT32) == precision.FLOAT32
    assert (
        capsys.readouterr().out.strip()
        == "precision mixed_bfloat16 on CPU (native bf16: GFRNET_CPU_BF16=1)"
    )
    with pytest.raises(BadConfigError, match="mixed_float16 needs a GPU"):
        inference_policy(precision.FLOAT16)


def test_export_takes_a_compute_precision_for_the_savedmodel_only(tmp_path):
    # Checked before the model is read: the model path need not exist.
    command = [
        sys.executable,
        "-m",
        "gfrnet_tf.apps.export",
        f"--model={tmp_path / 'run'}",
        f"--output={tmp_path / 'export'}",
        "--formats=savedmodel,tflite_fp32",
        "--precision=mixed_bfloat16",
    ]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --precision: mixed_bfloat16 applies to the savedmodel format only, not "
        "tflite_fp32 (TFLite has its own fp16 and int8 variants)"
    )
    assert not (tmp_path / "export").exists()
