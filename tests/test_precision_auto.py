"""runtime.mixed_precision auto on a CPU: bfloat16 only where the CPU computes it natively
(AVX512-BF16 or AMX; elsewhere TensorFlow emulates it, several times slower than float32), the
choice and its reason in the run log, and no shipped recipe forcing a precision."""
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from conftest import tiny
from zoo import runtime
from zoo.recipe import load_recipe, shipped_recipes
from zoo.runtime import Device, choose_policy, native_bfloat16_flags

FLAGS_AVX2 = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr sse sse2 ht syscall nx lm pni "
              "ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand hypervisor bmi1 avx2 "
              "smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec")
FLAGS_AVX512_BF16 = FLAGS_AVX2 + " avx512f avx512dq avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512_vnni"
FLAGS_AMX = FLAGS_AVX2 + " avx512f avx512bw amx_bf16 amx_tile amx_int8"


def cpuinfo(flags: str, processors: int = 2) -> str:
    """A /proc/cpuinfo text as Linux writes it: one block per logical processor."""
    return "\n".join(f"processor\t: {i}\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
                     f"flags\t\t: {flags}\nbugs\t\t: sysret_ss_attrs\n" for i in range(processors))


@pytest.mark.parametrize("text, native", [
    (cpuinfo(FLAGS_AVX2), ()),  # the project's AVX2 EPYC: 8 retinanet steps 388 s in bfloat16, 70 s in float32
    (cpuinfo(FLAGS_AVX512_BF16), ("avx512_bf16",)),
    (cpuinfo(FLAGS_AMX), ("amx_bf16",)),
    (cpuinfo(FLAGS_AVX2 + " avx512f avx512bw avx512vl"), ()),  # AVX-512 without its bfloat16 instructions
    ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 bf16 i8mm\n", ()),  # aarch64
    ("", ()),  # no /proc/cpuinfo (macOS, Windows)
])
def test_native_bfloat16_is_read_from_the_cpu_flags(text, native):
    assert native_bfloat16_flags(text) == native


@pytest.mark.parametrize("devices, policy, why", [
    ([Device("CPU")], "float32", "auto: CPU without native bfloat16"),
    ([Device("CPU", bfloat16_flags=("avx512_bf16",))], "mixed_bfloat16",
     "auto: the CPU computes bfloat16 natively: avx512_bf16"),
    ([Device("CPU", bfloat16_flags=("avx512_bf16", "amx_bf16"))], "mixed_bfloat16",
     "auto: the CPU computes bfloat16 natively: avx512_bf16, amx_bf16"),
    # A GPU trains: its kind decides, whatever the CPU.
    ([Device("CPU", bfloat16_flags=("amx_bf16",)), Device("GPU", (8, 0))], "mixed_float16",
     "auto: GPU with tensor cores"),
    ([Device("CPU", bfloat16_flags=("amx_bf16",)), Device("GPU", (6, 1))], "float32",
     "auto: GPU of compute capability 6.1, below 7.0 (no tensor cores)"),
    ([Device("CPU"), Device("TPU")], "mixed_bfloat16", "auto: TPU"),
])
def test_auto_says_what_it_chose_and_why(devices, policy, why):
    assert choose_policy("auto", devices) == (policy, why)


def test_a_forced_bfloat16_on_a_cpu_without_it_is_kept_but_warned_about():
    policy, why = choose_policy("mixed_bfloat16", [Device("CPU")])
    assert policy == "mixed_bfloat16" and "no native bfloat16" in why and "slower than float32" in why
    assert choose_policy("mixed_bfloat16", [Device("CPU", bfloat16_flags=("avx512_bf16",))]) == (
        "mixed_bfloat16", "runtime.mixed_precision")
    assert choose_policy("float32", [Device("CPU", bfloat16_flags=("avx512_bf16",))]) == (
        "float32", "runtime.mixed_precision")


@pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc/cpuinfo, Linux only")
def test_this_machines_cpu_is_read_from_proc_cpuinfo(monkeypatch):
    expected = native_bfloat16_flags(Path("/proc/cpuinfo").read_text())
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    assert runtime.detect_cpu() == Device("CPU", bfloat16_flags=expected)
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # no oneDNN: TensorFlow's own kernels emulate bfloat16
    assert runtime.detect_cpu() == Device("CPU")


@pytest.mark.parametrize("flags, said", [
    ((), "policy float32 (auto: CPU without native bfloat16);"),
    (("avx512_bf16",), "policy mixed_bfloat16 (auto: the CPU computes bfloat16 natively: avx512_bf16);"),
])
def test_the_run_log_says_which_precision_and_why(monkeypatch, capsys, tmp_path, flags, said):
    monkeypatch.setattr(runtime, "detect_cpu", lambda: Device("CPU", bfloat16_flags=flags))
    run = zoo.train(tiny("digits_cnn", "train.epochs=1", "train.validate=false"), output_dir=tmp_path)
    training = [line for line in capsys.readouterr().out.splitlines() if line.startswith("training digits_cnn")]
    assert len(training) == 1 and said in training[0]
    policy = said.split()[1]
    assert (tmp_path / "recipe.yaml").read_text().startswith(f"# resolved: runtime.mixed_precision {policy},")
    assert any(layer.compute_dtype == ("bfloat16" if flags else "float32") for layer in run.model.layers)


def test_no_shipped_recipe_forces_a_precision():
    recipes = shipped_recipes()
    assert len(recipes) > 10
    forced = {path.name: load_recipe(path).runtime.mixed_precision for path in recipes}
    assert {name: p for name, p in forced.items() if p != "auto"} == {}


def test_zoo_train_on_a_cpu_without_native_bfloat16_trains_in_float32(tmp_path):
    """The path of every AVX2-only CPU, end to end: a real `zoo train` in a private mount namespace
    whose /proc/cpuinfo lacks avx512_bf16 and amx_bf16 (root; skipped where unshare is refused)."""
    plain = tmp_path / "cpuinfo"
    plain.write_text(re.sub(r"\b(avx512_bf16|amx_bf16)\b", "", Path("/proc/cpuinfo").read_text()))
    run = tmp_path / "run"
    script = (f"mount --bind {plain} /proc/cpuinfo && exec {sys.executable} -m zoo.cli train digits_cnn "
              f"train.epochs=1 train.verbose=0 --output {run}")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, text=True, capture_output=True,
                          timeout=300)
    if proc.returncode != 0 and "unshare" in proc.stderr and "Operation not permitted" in proc.stderr:
        pytest.skip("no mount namespace here (needs root)")
    assert proc.returncode == 0, proc.stderr
    assert "policy float32 (auto: CPU without native bfloat16)" in proc.stdout
    assert (run / "recipe.yaml").read_text().startswith("# resolved: runtime.mixed_precision float32")
