"""The repository's README: which TensorRT the plan must be served by, how the plan gets into
``1/``, how to start Triton, and the equivalent ``perf_analyzer``, Model Analyzer and ``rf-bench``
command lines."""

from __future__ import annotations

import shlex

from ..engines.build_spec import BuildSpec
from ..targets.profiles import Target
from .config import TRITON, ServingOptions, onnx_model_name, plan_model_name

__all__ = ["repository_readme"]


def _commands(bundle: str, repo: str, spec: BuildSpec, options: ServingOptions) -> list[str]:
    plan = f"{repo}/{plan_model_name(spec)}/1/{TRITON['files']['tensorrt']}"
    kit = f"{bundle}/rftrt-device.pyz"
    concurrency = "1:8:1"
    batch = str(min(spec.batch.opt, options.max_batch_size) if options.max_batch_size else spec.batch.opt)
    # perf_analyzer's -b counts requests of a model without batching (max_batch_size 0) as 1
    pa_batch = batch if options.max_batch_size else "1"
    analyzer_batch = str(options.max_batch_size or spec.batch.opt)
    return [
        "# 1. on the L40 host: build the plan into the version folder, then check it against the bundle",
        shlex.join(["python3", kit, "build", bundle, "--out", plan]),
        shlex.join(["python3", kit, "verify", plan, "--bundle", bundle]),
        "",
        "# 2. serve it (the Triton release whose TensorRT is the one above; explicit mode loads only the plan)",
        f"docker run --gpus all --rm -p8000:8000 -p8001:8001 -p8002:8002 -v \"$PWD/{repo}:/models\" nvcr.io/nvidia/tritonserver:<YY.MM>-py3 \\",
        f"  tritonserver --model-repository=/models --model-control-mode=explicit --load-model={plan_model_name(spec)}",
        "",
        "# 3. check the answers against the bundle's reference, then load-test over concurrencies",
        shlex.join(["rf-bench", "--backend", "triton", "--url", "localhost:8001", "--protocol", "grpc", "--bundle", bundle, "--batch", batch]),
        shlex.join(["perf_analyzer", "-m", plan_model_name(spec), "-i", "grpc", "-u", "localhost:8001", "-b", pa_batch, f"--concurrency-range={concurrency}", "--percentile=99"]),
        "",
        "# 4. let Model Analyzer search instance counts and batch sizes, never above the engine's profile",
        shlex.join(
            [
                "model-analyzer", "profile", "--model-repository", repo, "--profile-models", plan_model_name(spec),
                "--triton-launch-mode=docker", "--output-model-repository-path", f"{repo}-analyzed",
                "--run-config-search-max-model-batch-size", analyzer_batch, "--run-config-search-max-instance-count", "4",
                "--run-config-search-max-concurrency", "64",
            ]
        ),  # fmt: skip
    ]


def repository_readme(spec: BuildSpec, target: Target, options: ServingOptions, bundle: str, repo: str, onnx_file: str, onnx_reference: str) -> str:
    """The README of a repository written from ``spec``'s bundle (``bundle`` and ``repo`` as seen from
    the folder that holds both)."""
    plan, variant = plan_model_name(spec), onnx_model_name(spec)
    batching = (
        f"`max_batch_size` {options.max_batch_size}, dynamic batching with preferred sizes {list(options.preferred_batch_sizes)} "
        f"and a queue delay of {options.max_queue_delay_us} µs, CUDA graphs captured at those sizes"
        if options.max_batch_size
        else f"a static batch of {spec.batch.opt} (`max_batch_size` 0, dims with the batch, no dynamic batching)"
    )
    gpus = f"on GPUs {list(options.gpus)}" if options.gpus else "on every GPU Triton sees"
    lines = [
        f"# Triton model repository: {spec.model} r{spec.resolution} ({spec.precision}) for {target.display}",
        "",
        f"Written by rftrt from the bundle `{bundle}`. **The plan must be built and served by TensorRT {spec.tensorrt_version}** "
        f"on an SM {target.compute_capability} GPU ({target.gpu}): a TensorRT engine deserializes only under the TensorRT release "
        "that built it, so use the Triton container whose TensorRT is that release (Triton's release notes list the TensorRT of each "
        "container; the plan's sidecar `model.plan.json` records the one that built it).",
        "",
        "| model | platform | what |",
        "|---|---|---|",
        f"| `{plan}/` | `{TRITON['platforms']['tensorrt']}` | the TensorRT engine, `1/model.plan` (built on the L40 host, step 1); "
        f"{options.instance_count} instance(s) {gpus}; {batching} |",
        f"| `{variant}/` | `{TRITON['platforms']['onnxruntime']}` | the bundle's `{onnx_file}` as `1/model.onnx` on "
        f"{options.cpu_instance_count} CPU instance(s): serving without a GPU and checking clients (its reference: golden.npz `{onnx_reference}`) |",
        "",
        f"Inputs and outputs are the bundle's: `{spec.input_name}` → `{spec.output_name}`, at {spec.resolution}×{spec.resolution}.",
        "Every `config.pbtxt` here was parsed with Triton's own `ModelConfig` schema and checked against the bundle's build.json.",
        "",
        "```",
        *_commands(bundle, repo, spec, options),
        "```",
        "",
        f"Without a GPU, serve the ONNX Runtime variant instead: `--load-model={variant}` (any Triton with the ONNX Runtime backend).",
        "",
    ]
    return "\n".join(lines)
