"""The Triton model repository of an L40 bundle (rftrt.serving, rf-triton, rf-export --triton),
checked against Triton's own ModelConfig schema, and the rf-bench triton client against a real
Triton server (PyTriton's tritonserver, started and stopped here on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import cli_error, exported_bundle, one_line_error

from rftrt.engines.bundle import load_bundle_spec

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="the serving extra (tritonclient[grpc]) is not installed")
from google.protobuf import text_format  # noqa: E402 - tritonclient brings protobuf

from rftrt.cli.bench import bench_main  # noqa: E402
from rftrt.cli.triton import triton_main  # noqa: E402
from rftrt.serving import ServingOptions, check_repository, write_repository  # noqa: E402
from rftrt.serving.local_server import free_ports  # noqa: E402
from rftrt.tools.bench.backends.triton import TritonBench, run_triton_bench  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def l40() -> Path:
    return exported_bundle("l40")


def _parse(path: Path):
    config = model_config_pb2.ModelConfig()
    text_format.Parse(path.read_text(), config)
    return config


def test_repository_matches_bundle_and_schema(l40, tmp_path):
    spec = load_bundle_spec(l40)
    report = write_repository(l40, tmp_path / "repo")
    repo = tmp_path / "repo"
    plan, variant = _parse(repo / "rf_b0" / "config.pbtxt"), _parse(repo / "rf_b0_onnx" / "config.pbtxt")
    assert (plan.platform, variant.platform) == ("tensorrt_plan", "onnxruntime_onnx")
    for config in (plan, variant):
        assert config.max_batch_size == spec.batch.max
        assert [(t.name, list(t.dims), model_config_pb2.DataType.Name(t.data_type)) for t in config.input] == [("images", [3, 64, 64], "TYPE_FP32")]
        assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [1000])]
        assert list(config.dynamic_batching.preferred_batch_size) == [spec.batch.opt, spec.batch.max]
    assert [g.batch_size for g in plan.optimization.cuda.graph_spec] == [spec.batch.opt, spec.batch.max] and plan.optimization.cuda.graphs
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(plan.instance_group[0].kind) == "KIND_GPU"
    assert model_config_pb2.ModelInstanceGroup.Kind.Name(variant.instance_group[0].kind) == "KIND_CPU"
    # the plan's version folder waits for the kit's build; the variant carries the bundle's ONNX
    assert (repo / "rf_b0" / "1").is_dir() and not any((repo / "rf_b0" / "1").iterdir())
    assert (repo / "rf_b0_onnx" / "1" / "model.onnx").read_bytes() == (l40 / spec.onnx).read_bytes()
    readme = (repo / "README.md").read_text()
    assert f"TensorRT {spec.tensorrt_version}**" in readme and "perf_analyzer -m rf_b0" in readme and "model-analyzer profile" in readme
    # the kit's build writes the plan into the version folder (paths as seen from the folder holding the repository)
    bundle = os.path.relpath(l40, tmp_path)
    assert f"python3 {bundle}/rftrt-device.pyz build {bundle} --out repo/rf_b0/1/model.plan" in readme
    assert "--run-config-search-max-model-batch-size 32" in readme
    assert [c.platform for c in report.checks] == ["tensorrt_plan", "onnxruntime_onnx"]


def test_options_and_gpus_render(l40, tmp_path):
    options = ServingOptions(max_batch_size=16, preferred_batch_sizes=(4, 16), instance_count=2, gpus=(0, 1), max_queue_delay_us=500)
    write_repository(l40, tmp_path / "repo", options=options)
    plan = _parse(tmp_path / "repo" / "rf_b0" / "config.pbtxt")
    assert plan.max_batch_size == 16 and list(plan.dynamic_batching.preferred_batch_size) == [4, 16]
    assert plan.dynamic_batching.max_queue_delay_microseconds == 500
    assert (plan.instance_group[0].count, list(plan.instance_group[0].gpus)) == (2, [0, 1])


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda t: t + "dynamic_batchng { }\n", "is not a valid Triton ModelConfig"),  # a misspelled field
        (lambda t: t.replace("dims: [ 3, 64, 64 ]", "dims: [ 1, 3, 64, 64 ]"), "input images has dims [1, 3, 64, 64]"),
        (lambda t: t.replace("max_batch_size: 32", "max_batch_size: 64"), "max_batch_size 64 is outside the engine's profile 1:8:32"),
        (lambda t: t.replace("batch_size: 8\n", "batch_size: 0\n").replace("preferred_batch_size: [ 8, 32 ]", "preferred_batch_size: [ 8, 48 ]"), "batch size 48"),
        (lambda t: t.replace("TYPE_FP32", "TYPE_FP16", 1), "input images is TYPE_FP16, the engine's is TYPE_FP32"),
    ],
)
def test_check_refuses_edited_configs(l40, tmp_path, edit, expected):
    write_repository(l40, tmp_path / "repo")
    path = tmp_path / "repo" / "rf_b0" / "config.pbtxt"
    check_repository(tmp_path / "repo", l40)  # as written: valid
    path.write_text(edit(path.read_text()))
    assert expected in one_line_error(check_repository, tmp_path / "repo", l40)


def test_bad_input_is_one_line_and_writes_nothing(l40, tmp_path, capsys):
    repo = tmp_path / "repo"
    for argv, expected in (
        (["--max-batch", "64"], "max_batch_size 64 is outside the engine's profile 1:8:32"),
        (["--preferred-batch", "8,40"], "preferred batch size 40 is outside the engine's profile"),
        (["--max-batch", "16", "--preferred-batch", "32"], "(with max_batch_size 16)"),
        (["--instances", "0"], "instance count must be at least 1"),
    ):
        assert expected in cli_error(capsys, triton_main, [str(l40), "--out", str(repo), *argv], "rf-triton")
        assert not repo.exists()
    assert triton_main([str(l40), "--out", str(repo)]) == 0
    assert "exists; pass --force" in cli_error(capsys, triton_main, [str(l40), "--out", str(repo)], "rf-triton")
    assert triton_main([str(l40), "--out", str(repo), "--force", "--max-batch", "8"]) == 0
    assert _parse(repo / "rf_b0" / "config.pbtxt").max_batch_size == 8


def test_other_target_refused(tmp_path, capsys):
    orin = exported_bundle("orin")
    assert "a bundle for orin" in cli_error(capsys, triton_main, [str(orin), "--out", str(tmp_path / "repo")], "rf-triton")
    from rftrt.pipeline import ExportOptions, run_export

    message = one_line_error(run_export, ExportOptions(model="rf_b0", target="orin", resolution=64, triton=True, out_dir=str(tmp_path / "b")), log=lambda _: None)
    assert "--triton writes a Triton repository for l40 bundles, not orin" in message and not (tmp_path / "b").exists()
    from rftrt.cli.export import export_main

    argv = ["--model", "rf_b0", "--target", "orin", "--triton", "--out", str(tmp_path / "b")]
    assert "not orin; use --target l40" in cli_error(capsys, export_main, argv, "rf-export")
    (tmp_path / "b-triton").mkdir()  # an existing repository: refused before any work too
    message = one_line_error(run_export, ExportOptions(model="rf_b0", target="l40", resolution=64, triton=True, out_dir=str(tmp_path / "b")), log=lambda _: None)
    assert "b-triton exists; pass --force to replace it" in message and not (tmp_path / "b").exists()


def test_static_engine_is_served_without_batching():
    """A static-batch engine: max_batch_size 0, dims with the batch, one CUDA graph at its shape;
    asking for batching options is refused."""
    from helpers import spec_for

    from rftrt.serving.config import TensorIO, plan_config
    from rftrt.serving.validate import check_config
    from rftrt.targets.batch import BatchProfile
    from rftrt.targets.profiles import load_target

    spec = spec_for(load_target("l40", batch=BatchProfile(8, 8, 8)))
    inputs, outputs = [TensorIO("images", 1, (8, 3, 224, 224))], [TensorIO("logits", 1, (8, 1000))]
    text = plan_config(spec, ServingOptions().resolved(spec), inputs, outputs)
    check = check_config(text, "static/config.pbtxt", spec, inputs, outputs, "tensorrt_plan")
    config = model_config_pb2.ModelConfig()
    text_format.Parse(text, config)
    assert check.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [8, 3, 224, 224] and list(config.optimization.cuda.graph_spec[0].input["images"].dim) == [8, 3, 224, 224]
    assert "static batch of 8" in one_line_error(ServingOptions(max_batch_size=8).resolved, spec)
    message = one_line_error(check_config, text.replace("max_batch_size: 0", "max_batch_size: 8"), "static/config.pbtxt", spec, inputs, outputs, "tensorrt_plan")
    assert "the engine's batch is static (8), so it must be 0" in message


@pytest.fixture(scope="module")
def l40_fp32_r96(shared_tmp) -> Path:
    """An FP32 L40 bundle at another resolution, exported with --triton (its repository beside it)."""
    from rftrt.pipeline import ExportOptions, run_export

    out = shared_tmp.mktemp("export") / "rf_b0-l40-fp32"
    result = run_export(ExportOptions(model="rf_b0", target="l40", resolution=96, out_dir=str(out), triton=True), log=lambda _: None)
    assert result.stages[-1]["stage"] == "triton"
    return out


def test_export_triton_writes_the_repository(l40_fp32_r96):
    repo = l40_fp32_r96.with_name(l40_fp32_r96.name + "-triton")
    report = check_repository(repo, l40_fp32_r96)
    assert [c.model for c in report.checks] == ["rf_b0", "rf_b0_onnx"]
    variant = _parse(repo / "rf_b0_onnx" / "config.pbtxt")
    assert list(variant.input[0].dims) == [3, 96, 96]


# --- the client against a real Triton server ------------------------------------------------------


def _pytriton_python() -> str | None:
    """A Python with nvidia-pytriton (it pins numpy<2, so often its own environment:
    RFTRT_PYTRITON_PYTHON names it), or None."""
    for python in filter(None, (os.environ.get("RFTRT_PYTRITON_PYTHON"), sys.executable)):
        if shutil.which(python) and subprocess.run([python, "-c", "import pytriton, onnxruntime"], capture_output=True).returncode == 0:
            return python
    return None


@pytest.fixture(scope="module")
def triton_server(l40, shared_tmp):
    """PyTriton's tritonserver serving the L40 repository's ONNX Runtime variant on 127.0.0.1."""
    python = _pytriton_python()
    if python is None:
        pytest.skip("nvidia-pytriton is not installed here (set RFTRT_PYTRITON_PYTHON to a Python that has it and onnxruntime)")
    repo = shared_tmp.mktemp("served") / "repo"
    write_repository(l40, repo)
    http, grpc, metrics = free_ports(3)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = open(repo.parent / "server.log", "w+")
    argv = [python, "-m", "rftrt.serving.local_server", str(repo), "rf_b0_onnx", "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
    server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while "ready" not in Path(log.name).read_text().splitlines() and server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    if server.poll() is not None or time.monotonic() >= deadline:
        server.kill()
        pytest.fail(f"the Triton server did not start: {Path(log.name).read_text()[-2000:]}")
    yield {"grpc": f"127.0.0.1:{grpc}", "http": f"127.0.0.1:{http}"}
    server.terminate()
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


class _KServeV2:
    """The KServe v2 gRPC service (the service definitions tritonclient ships, served by grpcio),
    running a repository's ONNX Runtime variant: for machines without PyTriton's tritonserver."""

    def __init__(self, repo: Path, model: str) -> None:
        from concurrent import futures

        import grpc
        import onnxruntime as ort
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        self.pb, self.model = service_pb2, model
        self.config = _parse(repo / model / "config.pbtxt")
        self.session = ort.InferenceSession(str(repo / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        servicer = type("Servicer", (service_pb2_grpc.GRPCInferenceServiceServicer,), {
            "ServerLive": lambda _, request, context: service_pb2.ServerLiveResponse(live=True),
            "ServerMetadata": lambda _, request, context: service_pb2.ServerMetadataResponse(name="kserve-v2-grpc", version="test"),
            "ModelReady": lambda _, request, context: service_pb2.ModelReadyResponse(ready=request.name == model),
            "ModelMetadata": lambda _, request, context: self._metadata(),
            "ModelConfig": lambda _, request, context: service_pb2.ModelConfigResponse(config=self.config),
            "ModelInfer": lambda _, request, context: self._infer(request),
        })  # fmt: skip
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _metadata(self):
        def tensors(items):
            return [self.pb.ModelMetadataResponse.TensorMetadata(name=t.name, datatype="FP32", shape=[-1, *t.dims]) for t in items]

        return self.pb.ModelMetadataResponse(name=self.model, versions=["1"], platform=self.config.platform, inputs=tensors(self.config.input), outputs=tensors(self.config.output))

    #: classes the answers keep (None: all)
    classes: int | None = None

    def _infer(self, request):
        tensor = request.inputs[0]
        images = np.frombuffer(request.raw_input_contents[0], dtype=np.float32).reshape(list(tensor.shape))
        (logits,) = self.session.run([self.config.output[0].name], {tensor.name: images})
        logits = logits[:, : self.classes]
        output = self.pb.ModelInferResponse.InferOutputTensor(name=self.config.output[0].name, datatype="FP32", shape=list(logits.shape))
        return self.pb.ModelInferResponse(model_name=self.model, outputs=[output], raw_output_contents=[logits.astype(np.float32).tobytes()])


def test_client_against_the_kserve_v2_grpc_service(l40, tmp_path):
    """The client over the KServe v2 protocol, without PyTriton: the ONNX Runtime variant's answers
    pass, and the sweep counts every request."""
    write_repository(l40, tmp_path / "repo")
    service = _KServeV2(tmp_path / "repo", "rf_b0_onnx")
    service.server.start()
    try:
        report = run_triton_bench(TritonBench(url=f"127.0.0.1:{service.port}", bundle=str(l40), model="rf_b0_onnx", batches=[2], concurrencies=(1, 3), requests=3, warmup=0))
    finally:
        service.server.stop(0)
    assert report.check.passed and report.platform == "onnxruntime_onnx" and report.server["name"] == "kserve-v2-grpc"
    assert [(p.concurrency, p.requests) for p in report.points] == [(1, 3), (3, 9)]


def test_a_server_answering_other_shapes_is_one_line(l40, tmp_path, capsys):
    write_repository(l40, tmp_path / "repo")
    service = _KServeV2(tmp_path / "repo", "rf_b0_onnx")
    service.classes = 10
    service.server.start()
    try:
        argv = ["--backend", "triton", "--url", f"127.0.0.1:{service.port}", "--bundle", str(l40), "--triton-model", "rf_b0_onnx"]
        message = cli_error(capsys, bench_main, argv, "rf-bench")
    finally:
        service.server.stop(0)
    assert "answered logits of shape [8, 10] for 8 images; the bundle's reference is [8, 1000]" in message


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_client_checks_and_sweeps_a_real_server(l40, triton_server, protocol):
    report = run_triton_bench(TritonBench(url=triton_server[protocol], bundle=str(l40), protocol=protocol, model="rf_b0_onnx", batches=[1, 4], concurrencies=(1, 2), requests=4, warmup=1))
    assert report.check.passed and report.check.kind == "fp32" and report.check.images == 8
    assert report.server["version"] and report.platform == "python"  # PyTriton serves through the Python backend
    assert [(p.batch, p.concurrency, p.requests) for p in report.points] == [(1, 1, 4), (1, 2, 8), (4, 1, 4), (4, 2, 8)]
    assert all(p.throughput_img_s > 0 and p.stats.p99_ms >= p.stats.median_ms > 0 for p in report.points)


@pytest.mark.slow
def test_rf_bench_triton_cli(l40, l40_fp32_r96, triton_server, tmp_path, capsys):
    url = triton_server["grpc"]
    out = tmp_path / "bench.json"
    argv = ["--backend", "triton", "--url", url, "--bundle", str(l40), "--triton-model", "rf_b0_onnx", "--concurrency", "1,2", "--iterations", "3", "--batch", "2", "--json", str(out)]
    assert bench_main(argv) == 0
    data = json.loads(out.read_text())
    assert data["passed"] and [p["concurrency"] for p in data["points"]] == [1, 2]
    assert "| batch | concurrency |" in capsys.readouterr().out
    # a bundle the server's model is not: other shapes
    other = ["--backend", "triton", "--url", url, "--bundle", str(l40_fp32_r96), "--triton-model", "rf_b0_onnx"]
    assert "takes images of shape [-1, 3, 64, 64], the bundle's is [N, 3, 96, 96]" in cli_error(capsys, bench_main, other, "rf-bench")
    assert "not ready" in cli_error(capsys, bench_main, [*argv[:6], "--triton-model", "nothing"], "rf-bench")
    assert "above the served model's max_batch_size 32" in cli_error(capsys, bench_main, [*argv[:8], "--batch", "64"], "rf-bench")


def test_server_down_is_one_line(l40, capsys):
    (port,) = free_ports(1)
    argv = ["--backend", "triton", "--url", f"127.0.0.1:{port}", "--bundle", str(l40)]
    assert "no Triton server answers at" in cli_error(capsys, bench_main, argv, "rf-bench")
    assert "needs --url HOST:PORT and --bundle" in cli_error(capsys, bench_main, ["--backend", "triton"], "rf-bench")
    assert "runs on its own" in cli_error(capsys, bench_main, ["--backend", "ort,triton", "--model", "rf_b0"], "rf-bench")


def test_golden_reference_is_what_the_variant_serves(l40, l40_fp32_r96):
    """The ONNX Runtime variant answers to the reference of the ONNX it carries."""
    from rftrt.serving.repository import onnx_variant

    for bundle, expected in ((l40, ("rf_b0.fp16.onnx", "logits")), (l40_fp32_r96, ("rf_b0.onnx", "logits_fp32"))):
        spec = load_bundle_spec(bundle)
        assert onnx_variant(spec, {p.name for p in bundle.iterdir()}) == expected
    with np.load(l40_fp32_r96 / "golden.npz") as golden:  # FP32 bundle: both references are one
        assert np.array_equal(golden["logits"], golden["logits_fp32"])
