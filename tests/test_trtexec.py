"""trtexec command lines for both TensorRT dialects, and the bundle's build.sh run against a stand-in trtexec."""

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import one_line_error
from helpers import spec_for as shared_spec_for

from rftrt.engines.build_spec import BuildSpec, Int8Source
from rftrt.engines.bundle import write_bundle
from rftrt.engines.trtexec import PolygraphyCheck, build_script, polygraphy_command, trtexec_bench_command, trtexec_build_command
from rftrt.targets.batch import BatchProfile
from rftrt.targets.profiles import Target, load_target

# Flags TensorRT 11's trtexec no longer has (NVIDIA's 10.x → 11.x trtexec migration guide).
REMOVED_IN_11 = ("--fp16", "--int8", "--bf16", "--fp8", "--best", "--calib", "--precisionConstraints",
                 "--layerPrecisions", "--layerOutputTypes", "--workspace")
FP32_LAYERS = ("/stages.2/op_list.1/context_module/main/ReduceSum", "/stages.3/op_list.0/context_module/main/Div")
OPTIONS_JSON = Path(__file__).resolve().parents[1] / "rftrt" / "engines" / "data" / "trtexec_options.json"


def spec_for(target: Target, precision: str = "fp16", **overrides) -> BuildSpec:
    """The shared spec with generic file names and no pinned layers unless a test gives them."""
    return shared_spec_for(target, precision, **{"onnx": "model.onnx", "engine": "model.engine", "fp32_layers": (), **overrides})


def _flags(argv: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv[1:]}


# --- the three commands of the report -----------------------------------------------------------


def test_orin_86_fp16_with_fp32_pins_dynamic_batch():
    spec = spec_for(load_target("orin"), fp32_layers=FP32_LAYERS)
    assert trtexec_build_command(spec) == [
        "trtexec",
        "--onnx=model.onnx",
        "--saveEngine=model.engine",
        "--minShapes=images:1x3x224x224",
        "--optShapes=images:8x3x224x224",
        "--maxShapes=images:32x3x224x224",
        "--memPoolSize=workspace:4096",
        "--builderOptimizationLevel=3",
        "--timingCacheFile=timing.cache",
        "--fp16",
        "--precisionConstraints=obey",
        "--layerPrecisions=/stages.2/op_list.1/context_module/main/ReduceSum:fp32,"
        "/stages.3/op_list.0/context_module/main/Div:fp32",
        "--skipInference",
    ]


def test_l40_114_strongly_typed():
    spec = spec_for(load_target("l40"), fp32_layers=FP32_LAYERS)
    argv = trtexec_build_command(spec)
    assert argv == [
        "trtexec",
        "--onnx=model.onnx",
        "--saveEngine=model.engine",
        "--minShapes=images:1x3x224x224",
        "--optShapes=images:8x3x224x224",
        "--maxShapes=images:32x3x224x224",
        "--memPoolSize=workspace:8192M",
        "--builderOptimizationLevel=3",
        "--timingCacheFile=timing.cache",
        "--skipInference",
    ]
    assert not _flags(argv) & set(REMOVED_IN_11)
    # "always enabled" in 11 (a deprecated no-op in 11.3.0's parser), so it stays out.
    assert "--stronglyTyped" not in argv


def test_orin_86_on_dla_core_0():
    spec = spec_for(load_target("orin", dla_core=0))
    assert trtexec_build_command(spec) == [
        "trtexec",
        "--onnx=model.onnx",
        "--saveEngine=model.engine",
        "--shapes=images:8x3x224x224",
        "--memPoolSize=workspace:4096",
        "--builderOptimizationLevel=3",
        "--timingCacheFile=timing.cache",
        "--fp16",
        "--useDLACore=0",
        "--allowGPUFallback",
        "--skipInference",
    ]


def test_dla_without_gpu_fallback_where_the_network_is_predicted_on_dla():
    spec = spec_for(load_target("orin", dla_core=0), gpu_fallback=False)
    argv = trtexec_build_command(spec)
    assert "--useDLACore=0" in argv and "--allowGPUFallback" not in argv
    assert "DLA core 0 entirely, without GPU fallback" in build_script(spec)


# --- dialects and versions ----------------------------------------------------------------------

ALL_RELEASES = [(name, r.version) for name in ("orin", "jetson-orin", "l40") for r in load_target(name).releases]


@pytest.mark.parametrize("name,version", ALL_RELEASES)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_release_gets_its_dialects_flags(name, version, precision):
    target = load_target(name, version)
    calib = "calib.cache" if precision == "int8" and not target.strongly_typed else None
    spec = spec_for(target, precision, fp32_layers=FP32_LAYERS, calibration_cache=calib)
    argv = trtexec_build_command(spec)
    flags = _flags(argv)
    assert argv[0] == "trtexec" and argv[-1] == "--skipInference"
    assert {"--onnx", "--saveEngine", "--memPoolSize", "--builderOptimizationLevel", "--timingCacheFile"} <= flags
    assert "--workspace" not in flags
    if target.strongly_typed:
        assert not flags & set(REMOVED_IN_11)
        return
    expected = {"fp32": set(), "fp16": {"--fp16"}, "int8": {"--int8", "--fp16", "--calib"}}[precision]
    assert flags & {"--fp16", "--int8", "--calib"} == expected
    pinned = precision != "fp32"
    assert ("--precisionConstraints=obey" in argv) == pinned
    assert ("--layerPrecisions" in flags) == pinned


def test_workspace_unit_per_version():
    # 8.6 reads MiB and knows no suffix; 10.x takes base-2 suffixes.
    assert "--memPoolSize=workspace:4096" in trtexec_build_command(spec_for(load_target("jetson-orin", "8.6")))
    assert "--memPoolSize=workspace:4096M" in trtexec_build_command(spec_for(load_target("jetson-orin", "10.3")))


def test_int8_weakly_typed_with_a_calibration_cache():
    argv = trtexec_build_command(spec_for(load_target("orin"), "int8", calibration_cache="calib.cache"))
    assert argv[argv.index("--int8") :][:3] == ["--int8", "--fp16", "--calib=calib.cache"]


def test_int8_without_cache_is_explicit_quantization():
    argv = trtexec_build_command(spec_for(load_target("jetson-orin"), "int8"))
    assert "--int8" in argv and not any(a.startswith("--calib") for a in argv)


def test_strong_dialect_on_10x_opts_in():
    spec = spec_for(load_target("l40", "10.13"), dialect="strong")
    argv = trtexec_build_command(spec)
    assert "--stronglyTyped" in argv and not _flags(argv) & {"--fp16", "--int8"}


# --- refused specs ------------------------------------------------------------------------------


def test_refusals():
    orin = load_target("orin")
    assert "no strongly typed" in one_line_error(trtexec_build_command, spec_for(orin, dialect="strong"))
    assert "no calibration cache" in one_line_error(
        trtexec_build_command, spec_for(load_target("l40"), "int8", calibration_cache="calib.cache")
    )
    dla = load_target("orin", dla_core=0)
    assert "FP16 or INT8 only" in one_line_error(trtexec_build_command, spec_for(dla, "fp32"))
    assert "static shapes" in one_line_error(trtexec_build_command, spec_for(dla, batch=BatchProfile(1, 8, 32)))
    assert "calibration cache" in one_line_error(trtexec_build_command, spec_for(dla, "int8"))
    assert "'bad,name'" in one_line_error(trtexec_build_command, spec_for(orin, fp32_layers=("ok", "bad,name")))
    assert "wild*card" in one_line_error(trtexec_build_command, spec_for(orin, fp32_layers=("wild*card",)))
    assert "input name" in one_line_error(trtexec_build_command, spec_for(orin, input_name="a,b"))
    assert "dialect" in one_line_error(trtexec_build_command, spec_for(orin, dialect="typed"))
    assert "precision" in one_line_error(trtexec_build_command, spec_for(orin, "bf16"))
    assert "min <= opt <= max" in one_line_error(trtexec_build_command, spec_for(orin, batch=BatchProfile(8, 1, 32)))
    # A DLA int8 build with a cache is fine on 8.6.
    assert "--calib=calib.cache" in trtexec_build_command(spec_for(dla, "int8", calibration_cache="calib.cache"))


# --- benchmark ----------------------------------------------------------------------------------


def test_bench_on_the_gpu_uses_cuda_graphs_and_keeps_copies():
    argv = trtexec_bench_command(spec_for(load_target("orin")))
    assert argv == [
        "trtexec",
        "--loadEngine=model.engine",
        "--shapes=images:8x3x224x224",
        "--warmUp=500",
        "--duration=10",
        "--iterations=100",
        "--useSpinWait",
        "--useCudaGraph",
    ]


def test_bench_on_dla_has_no_cuda_graph():
    argv = trtexec_bench_command(spec_for(load_target("jetson-orin", dla_core=1)))
    assert "--useDLACore=1" in argv and "--useCudaGraph" not in argv
    assert "--shapes=images:8x3x224x224" in argv


def test_bench_on_tensorrt_11_turns_copies_on_and_graphs_off_for_dla():
    # 11.x flipped the defaults: copies off, CUDA graphs and spin-wait on (11.3.0 InferenceOptions::parse).
    gpu = trtexec_bench_command(spec_for(load_target("l40")))
    assert "--includeDataTransfers" in gpu
    assert not {"--useCudaGraph", "--useSpinWait", "--noDataTransfers", "--noCudaGraph"} & _flags(gpu)
    dla = trtexec_bench_command(spec_for(load_target("jetson-orin", "11.4", dla_core=0)))
    assert {"--includeDataTransfers", "--useDLACore", "--noCudaGraph"} <= _flags(dla)


@pytest.mark.parametrize("name,version", [("orin", "8.6"), ("jetson-orin", "10.3"), ("l40", "10.13")])
def test_bench_before_11_keeps_the_default_copies(name, version):
    argv = trtexec_bench_command(spec_for(load_target(name, version)))
    assert not {"--noDataTransfers", "--includeDataTransfers"} & _flags(argv)


# --- build.sh -----------------------------------------------------------------------------------

FAKE_TRTEXEC = """#!/usr/bin/env bash
# Stands in for trtexec: records its arguments one per line, writes the engine it is asked to save.
printf '%s\\n' "$@" >> "$ARGS_LOG"
echo '---' >> "$ARGS_LOG"
for arg in "$@"; do
  case "$arg" in --saveEngine=*) echo engine > "${arg#--saveEngine=}" ;; esac
done
echo "&&&& PASSED TensorRT.trtexec [TensorRT v8612]"
"""


@pytest.fixture
def fake_trtexec(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "trtexec"
    exe.write_text(FAKE_TRTEXEC)
    exe.chmod(0o755)
    return bin_dir


def _bundle(tmp_path: Path, spec: BuildSpec, check: PolygraphyCheck | None = None) -> Path:
    report = write_bundle(
        tmp_path / "bundle", {"build.sh": build_script(spec, check).encode(), "build.json": spec.to_json().encode()}, versions={}
    )
    return report.path


def _run(bundle: Path, *args: str, path: str, log: Path, polygraphy_rc: int = 0) -> subprocess.CompletedProcess:
    env = {"PATH": path, "ARGS_LOG": str(log), "HOME": str(bundle), "POLYGRAPHY_RC": str(polygraphy_rc)}
    # Run from elsewhere: build.sh must cd to its own folder.
    return subprocess.run(["bash", str(bundle / "build.sh"), *args], cwd="/", env=env, capture_output=True, text=True, timeout=30)


def _recorded(log: Path) -> list[list[str]]:
    runs, current = [], []
    for line in log.read_text().splitlines():
        if line == "---":
            runs.append(current)
            current = []
        else:
            current.append(line)
    return runs


@pytest.mark.parametrize(
    "target",
    [load_target("orin"), load_target("l40"), load_target("jetson-orin", "11.4", dla_core=0), load_target("orin", dla_core=1)],
    ids=["orin", "l40", "jetson-orin-11.4-dla", "orin-dla"],
)
def test_build_script_passes_bash_syntax_check(tmp_path, target):
    script = tmp_path / "build.sh"
    script.write_text(build_script(spec_for(target, fp32_layers=FP32_LAYERS), CHECK))
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_build_script_is_executable_in_a_bundle(tmp_path):
    bundle = _bundle(tmp_path, spec_for(load_target("orin")))
    mode = (bundle / "build.sh").stat().st_mode
    assert stat.S_IMODE(mode) == 0o755
    assert (bundle / "build.sh").read_text().startswith("#!/usr/bin/env bash\n")


def test_build_script_runs_the_exact_build_command(tmp_path, fake_trtexec):
    # Layer names with a space and shell characters must reach trtexec unchanged.
    spec = spec_for(load_target("orin"), fp32_layers=FP32_LAYERS + ("/odd name/$HOME;`x`",))
    bundle = _bundle(tmp_path, spec)
    log = tmp_path / "args.log"
    result = _run(bundle, path=f"{fake_trtexec}:/usr/bin:/bin", log=log)
    assert result.returncode == 0, result.stderr
    assert _recorded(log) == [trtexec_build_command(spec)[1:]]
    assert (bundle / "model.engine").read_text() == "engine\n"
    assert "&&&& PASSED" in (bundle / "build.log").read_text()
    # The benchmark command is printed, not run.
    assert "--loadEngine=model.engine" in result.stdout and not (bundle / "bench.log").exists()


def test_build_script_bench_runs_the_benchmark(tmp_path, fake_trtexec):
    spec = spec_for(load_target("jetson-orin", dla_core=0))
    bundle = _bundle(tmp_path, spec)
    log = tmp_path / "args.log"
    result = _run(bundle, "--bench", path=f"{fake_trtexec}:/usr/bin:/bin", log=log)
    assert result.returncode == 0, result.stderr
    assert _recorded(log) == [trtexec_build_command(spec)[1:], trtexec_bench_command(spec)[1:]]
    assert (bundle / "bench.log").exists()


def test_build_script_without_trtexec_says_what_to_do(tmp_path):
    if shutil.which("trtexec", path="/usr/bin:/bin"):
        pytest.skip("a real trtexec is installed in /usr/bin or /bin")
    bundle = _bundle(tmp_path, spec_for(load_target("orin")))
    result = _run(bundle, path="/usr/bin:/bin", log=tmp_path / "args.log")
    assert result.returncode == 127
    assert "trtexec not found" in result.stderr and "TensorRT 8.6" in result.stderr and "TRTEXEC=" in result.stderr
    assert not (bundle / "model.engine").exists()


def test_build_script_refuses_unknown_arguments(tmp_path, fake_trtexec):
    bundle = _bundle(tmp_path, spec_for(load_target("orin")))
    result = _run(bundle, "--fast", path=f"{fake_trtexec}:/usr/bin:/bin", log=tmp_path / "args.log")
    assert result.returncode == 2 and "usage" in result.stderr


def test_build_script_stops_when_trtexec_fails(tmp_path, fake_trtexec):
    (fake_trtexec / "trtexec").write_text("#!/usr/bin/env bash\necho '&&&& FAILED'\nexit 1\n")
    bundle = _bundle(tmp_path, spec_for(load_target("orin")))
    result = _run(bundle, "--bench", path=f"{fake_trtexec}:/usr/bin:/bin", log=tmp_path / "args.log")
    assert result.returncode == 1 and "built model.engine" not in result.stdout


# --- flags against the per-version option lists --------------------------------------------------


def _options_by_version() -> dict[str, set[str]]:
    """Version → accepted flags, from the "versions" table of the committed trtexec_options.json."""
    table = json.loads(OPTIONS_JSON.read_text())["versions"]
    return {version: {str(o).split("=", 1)[0] for o in entry["options"]} for version, entry in table.items()}


@pytest.mark.parametrize("name,version", ALL_RELEASES)
def test_emitted_flags_exist_in_that_trtexec(name, version):
    # The table reads some versions only (8.6, 10.3, 10.15, 11.3 when written). A release is checked
    # against every entry of its major version: a flag that 10.3 and 10.15 both accept is taken to be
    # in 10.10 and 10.13 too, and 11.3's list stands for 11.4.
    options = _options_by_version()
    major = version.split(".")[0]
    entries = [v for v in options if v.split(".")[0] == major]
    assert entries, f"{OPTIONS_JSON.name} has no TensorRT {major}.x entry"
    known = set.intersection(*(options[v] for v in entries))
    for dla in (None, 0) if load_target(name).dla_cores else (None,):
        target = load_target(name, version, dla_core=dla)
        for precision in ("fp16", "int8"):
            calib = None if target.strongly_typed else "calib.cache"
            spec = spec_for(target, precision, fp32_layers=FP32_LAYERS, calibration_cache=calib)
            for argv in (trtexec_build_command(spec), trtexec_bench_command(spec)):
                assert _flags(argv) <= known, f"TensorRT {version}: {sorted(_flags(argv) - known)}"


# --- weakly typed specs on TensorRT 11, and build.json's INT8 source ----------------------------


@pytest.mark.parametrize("precision,calib", [("fp32", None), ("fp16", None), ("int8", "calib.cache"), ("int8", None)])
def test_a_weakly_typed_spec_for_11_is_refused_as_the_builder_refuses_it(precision, calib):
    spec = spec_for(load_target("l40"), precision, dialect="weak", fp32_layers=FP32_LAYERS, calibration_cache=calib)
    message = one_line_error(trtexec_build_command, spec)
    assert message.startswith("TensorRT 11.4 builds strongly typed networks only")
    assert "rf-export --trt-version 11.4" in message
    assert "strongly typed networks only" in one_line_error(trtexec_bench_command, spec)


def test_the_qdq_route_builds_the_qdq_onnx_with_int8_fp16_and_pins_and_no_calib():
    spec = spec_for(load_target("orin", "10.10"), "int8", onnx="model.qdq.onnx", fp32_layers=FP32_LAYERS, int8=Int8Source("qdq", "model.qdq.onnx"))
    argv = trtexec_build_command(spec)
    assert "--onnx=model.qdq.onnx" in argv
    assert argv[argv.index("--int8") :][:3] == ["--int8", "--fp16", "--precisionConstraints=obey"]
    assert not any(a.startswith("--calib") for a in argv) and "--layerPrecisions" in _flags(argv)


def test_an_int8_source_that_does_not_match_the_spec_is_refused():
    orin = load_target("orin")
    cases = [
        (spec_for(orin, "fp16", int8=Int8Source("cache", "calib.cache")), "for a fp16 build"),
        (spec_for(orin, "int8", calibration_cache="calib.cache", int8=Int8Source("table", "calib.cache")), "not one of cache, qdq"),
        (spec_for(orin, "int8", calibration_cache="other.cache", int8=Int8Source("cache", "calib.cache")), "calibration_cache is 'other.cache'"),
        (spec_for(orin, "int8", calibration_cache="calib.cache", int8=Int8Source("qdq", "model.onnx")), "with the calibration cache calib.cache"),
        (spec_for(orin, "int8", int8=Int8Source("qdq", "model.qdq.onnx")), "but it builds model.onnx"),
    ]
    for spec, words in cases:
        assert words in one_line_error(trtexec_build_command, spec), words


# --- build.sh: the engine must exist; --verify with Polygraphy --------------------------------------

CHECK = PolygraphyCheck("polygraphy_inputs.json", "polygraphy_outputs.json", 0.0248, 0.0316, "fp16")
FAKE_POLYGRAPHY = """#!/usr/bin/env bash
# Stands in for polygraphy: records its arguments like the fake trtexec, exits with $POLYGRAPHY_RC.
printf '%s\\n' "$@" >> "$ARGS_LOG"
echo '---' >> "$ARGS_LOG"
[ "$POLYGRAPHY_RC" = 0 ] && echo "[I] PASSED | Command: polygraphy $*" || echo "[E] FAILED | Command: polygraphy $*"
exit "$POLYGRAPHY_RC"
"""


@pytest.fixture
def fake_polygraphy(fake_trtexec):
    exe = fake_trtexec / "polygraphy"
    exe.write_text(FAKE_POLYGRAPHY)
    exe.chmod(0o755)
    return fake_trtexec


def test_build_script_fails_when_trtexec_writes_no_engine(tmp_path, fake_trtexec):
    # A trtexec that exits 0 without writing the engine (and an engine left from an earlier build,
    # which must not pass for this one).
    (fake_trtexec / "trtexec").write_text("#!/usr/bin/env bash\necho '&&&& PASSED TensorRT.trtexec'\n")
    bundle = _bundle(tmp_path, spec_for(load_target("orin")))
    (bundle / "model.engine").write_text("engine of an earlier build\n")
    (bundle / "model.engine.json").write_text("{}\n")
    result = _run(bundle, path=f"{fake_trtexec}:/usr/bin:/bin", log=tmp_path / "args.log")
    assert result.returncode == 1, result.stdout
    assert "build.sh: trtexec exited 0 but wrote no model.engine (see build.log)" in result.stderr
    assert "built model.engine" not in result.stdout and "to time it" not in result.stdout
    assert not (bundle / "model.engine").exists() and not (bundle / "model.engine.json").exists()


def test_build_script_fails_on_an_empty_engine(tmp_path, fake_trtexec):
    (fake_trtexec / "trtexec").write_text(FAKE_TRTEXEC.replace("echo engine >", ": >"))
    bundle = _bundle(tmp_path, spec_for(load_target("orin")))
    result = _run(bundle, path=f"{fake_trtexec}:/usr/bin:/bin", log=tmp_path / "args.log")
    assert result.returncode == 1 and "wrote no model.engine" in result.stderr


def test_polygraphy_command():
    assert polygraphy_command("model.engine", "--trt", CHECK) == [
        "polygraphy", "run", "model.engine", "--trt",
        "--load-inputs", "polygraphy_inputs.json", "--load-outputs", "polygraphy_outputs.json",
        "--check-error-stat", "elemwise", "--atol", "0.0248", "--rtol", "0.0316",
    ]  # fmt: skip


@pytest.mark.parametrize("args", [("--verify",), ("--bench", "--verify"), ("--verify", "--bench")])
def test_build_script_verify_runs_polygraphy_on_the_engine_before_the_benchmark(tmp_path, fake_polygraphy, args):
    spec = spec_for(load_target("orin"))
    bundle = _bundle(tmp_path, spec, CHECK)
    log = tmp_path / "args.log"
    result = _run(bundle, *args, path=f"{fake_polygraphy}:/usr/bin:/bin", log=log)
    assert result.returncode == 0, result.stderr
    expected = [trtexec_build_command(spec)[1:], polygraphy_command(spec.engine, "--trt", CHECK)[1:]]
    assert _recorded(log) == expected + ([trtexec_bench_command(spec)[1:]] if "--bench" in args else [])
    assert "PASSED" in (bundle / "verify.log").read_text()
    assert "==> model.engine matches the reference (atol 0.0248, rtol 0.0316)" in result.stdout


def test_build_script_verify_fails_on_a_mismatch(tmp_path, fake_polygraphy):
    bundle = _bundle(tmp_path, spec_for(load_target("orin")), CHECK)
    log = tmp_path / "args.log"
    result = _run(bundle, "--verify", "--bench", path=f"{fake_polygraphy}:/usr/bin:/bin", log=log, polygraphy_rc=1)
    assert result.returncode == 1
    assert "build.sh: model.engine differs from the ONNX Runtime reference beyond atol 0.0248, rtol 0.0316" in result.stderr
    assert len(_recorded(log)) == 2 and not (bundle / "bench.log").exists()  # no timing of a wrong engine


def test_build_script_verify_without_polygraphy_says_so_before_building(tmp_path, fake_trtexec):
    if shutil.which("polygraphy", path="/usr/bin:/bin"):
        pytest.skip("a real polygraphy is installed in /usr/bin or /bin")
    bundle = _bundle(tmp_path, spec_for(load_target("orin")), CHECK)
    log = tmp_path / "args.log"
    result = _run(bundle, "--verify", path=f"{fake_trtexec}:/usr/bin:/bin", log=log)
    assert result.returncode == 127 and "polygraphy not found" in result.stderr and "POLYGRAPHY=" in result.stderr
    assert not log.exists() and not (bundle / "model.engine").exists()


def test_build_script_without_polygraphy_files_has_no_verify(tmp_path, fake_polygraphy):
    bundle = _bundle(tmp_path, spec_for(load_target("orin")))
    result = _run(bundle, "--verify", path=f"{fake_polygraphy}:/usr/bin:/bin", log=tmp_path / "args.log")
    assert result.returncode == 2 and "usage" in result.stderr and "--verify" not in result.stderr
    assert "--verify" in build_script(spec_for(load_target("orin")), CHECK)
