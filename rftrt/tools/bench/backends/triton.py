"""``rf-bench --backend triton``: a running Triton Inference Server, checked and load-tested.

Against a server at ``--url`` (HTTP or gRPC through tritonclient) serving a bundle's repository
(:mod:`rftrt.serving`), :func:`run_triton_bench`

1. checks that the server is live and the model ready, and that the model's inputs and outputs are
   the bundle's (names, data types, shapes): anything else is a one-line error;
2. sends the bundle's golden images and compares the answers with the bundle's ONNX Runtime
   reference at the precision-aware tolerance (:mod:`rftrt.comparison`): the engine's for the
   TensorRT plan (``tf32``/``fp16``/``int8``), ``fp32`` for the ONNX Runtime variant against the
   reference of the ONNX it serves;
3. then, only if the answers pass, keeps ``concurrency`` requests in flight (one thread and one
   connection per request stream, as perf_analyzer's concurrency mode does) for each batch size and
   concurrency, and reports the latency percentiles of the requests (client-side wall clock: queueing,
   batching, transfer and inference together) and the throughput (images answered per second of wall time).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ....comparison import TOLERANCES, Comparison, compare
from ....engines.build_spec import BuildSpec
from ....engines.bundle import open_bundle
from ....engines.verify import ENGINE_TOLERANCE, Golden
from ....errors import RftrtError
from ....serving.config import TRITON, plan_model_name
from ....serving.repository import onnx_variant
from ....timing import LatencyStats
from ...tables import render_table
from ..environment import collect_environment
from ..report import write_report_files

__all__ = ["TritonBench", "SweepPoint", "TritonReport", "run_triton_bench", "write_triton_outputs", "PROTOCOLS"]

PROTOCOLS = ("grpc", "http")


@dataclass(frozen=True)
class TritonBench:
    """What to check and measure: the server, the bundle it serves, the model, the sweep."""

    url: str
    bundle: str
    protocol: str = "grpc"
    #: the model's name on the server (default: the TensorRT plan's, the bundle's model)
    model: str | None = None
    batches: Sequence[int] | None = None
    concurrencies: Sequence[int] = (1, 2, 4, 8)
    #: untimed requests per stream before each point
    warmup: int = 2
    #: timed requests per stream at each point
    requests: int = 20
    timeout_s: float = 60.0


@dataclass(frozen=True)
class SweepPoint:
    batch: int
    concurrency: int
    requests: int
    seconds: float
    stats: LatencyStats
    #: images answered per second of wall time, all streams together
    throughput_img_s: float

    def as_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in ("batch", "concurrency", "requests", "seconds", "throughput_img_s")}, "stats": self.stats.as_dict()}


@dataclass
class TritonReport:
    """One run against a server (``--json`` writes :meth:`as_dict`); truthy when the answers passed."""

    request: TritonBench
    model: str
    platform: str
    server: dict[str, str]
    tolerance: str
    check: Comparison
    points: list[SweepPoint] = field(default_factory=list)
    environment: Any = None
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.check.passed

    def lines(self) -> list[str]:
        r = self.request
        server = f"Triton {self.server.get('version', '?')}" if self.server.get("name", "triton") == "triton" else self.server.get("name", "?")
        limits = ", ".join(f"{k} {v}" for k, v in TOLERANCES[self.tolerance].items())
        out = [
            f"rf-bench --backend triton: {self.model} ({self.platform}) on {server} at {r.url} ({r.protocol})",
            f"answers: {self.check.line()}  (tolerance {self.tolerance}: {limits})",
        ]
        if not self.check.passed:
            return out + ["no load test: the answers do not match the bundle's reference"]
        out += [
            f"method: {r.warmup} warm-up and {r.requests} timed requests per stream; concurrency = streams in flight, one connection each;",
            "latency = client wall clock per request (queue, batching, transfer, inference); throughput = images answered / wall time",
            "",
            render_table(
                ["batch", "concurrency", "requests", "median ms", "p90", "p99", "img/s"],
                [[p.batch, p.concurrency, p.requests, f"{p.stats.median_ms:.2f}", f"{p.stats.p90_ms:.2f}", f"{p.stats.p99_ms:.2f}", f"{p.throughput_img_s:,.1f}"] for p in self.points],
            ),
        ]
        return out

    def as_dict(self) -> dict:
        from .... import __version__

        return {
            "rftrt_version": __version__,
            "backend": "triton",
            "url": self.request.url,
            "protocol": self.request.protocol,
            "bundle": self.request.bundle,
            "model": self.model,
            "platform": self.platform,
            "server": dict(self.server),
            "tolerance": {"kind": self.tolerance, **TOLERANCES[self.tolerance]},
            "check": self.check.as_dict(),
            "passed": self.check.passed,
            "settings": {"warmup": self.request.warmup, "requests": self.request.requests, "concurrencies": list(self.request.concurrencies)},
            "points": [p.as_dict() for p in self.points],
            "environment": self.environment.as_dict() if self.environment is not None else None,
            "seconds": self.seconds,
        }

    def markdown(self, plot: str | None = None) -> str:
        out = [f"# rf-bench: {self.model} on Triton at {self.request.url}", "", "```", *self.lines(), "```", ""]
        if plot:
            out += [f"![throughput against concurrency]({plot})", ""]
        if self.environment is not None:
            out += ["## Client machine", ""] + [f"- {line}" for line in self.environment.lines()] + [""]
        out.append(f"Wall time of the run: {self.seconds:.0f} s.\n")
        return "\n".join(out)


# --- the server -----------------------------------------------------------------------------


class _Connection:
    """One tritonclient connection (HTTP or gRPC) with one-line errors."""

    def __init__(self, url: str, protocol: str, timeout_s: float) -> None:
        if protocol not in PROTOCOLS:
            raise RftrtError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
        try:
            if protocol == "grpc":
                import tritonclient.grpc as client
            else:
                import tritonclient.http as client
        except ImportError as exc:
            raise RftrtError(f"rf-bench --backend triton needs tritonclient ({exc}); pip install 'rftrt[serving]'") from None
        self.client_module, self.protocol, self.url, self.timeout_s = client, protocol, url, timeout_s
        try:
            self.client = client.InferenceServerClient(url=url, **({"network_timeout": timeout_s, "connection_timeout": timeout_s} if protocol == "http" else {}))
        except Exception as exc:  # noqa: BLE001 - a malformed URL is refused by the client library itself
            raise RftrtError(f"cannot reach a Triton server at {url} ({protocol}): {exc}") from None

    def call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tritonclient raises InferenceServerException and transport errors alike
            text = " ".join(str(exc).split())
            raise RftrtError(f"the Triton server at {self.url} ({self.protocol}) failed to {what}: {text[:300]}") from None

    def metadata(self, model: str) -> dict:
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        return self.call(f"describe model {model}", self.client.get_model_metadata, model, **kwargs)

    def config(self, model: str) -> dict:
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        found = self.call(f"give model {model}'s config", self.client.get_model_config, model, **kwargs)
        return found.get("config", found)

    def infer(self, model: str, input_name: str, output_name: str, datatype: str, images: np.ndarray) -> np.ndarray:
        tensor = self.client_module.InferInput(input_name, list(images.shape), datatype)
        tensor.set_data_from_numpy(images)
        wanted = [self.client_module.InferRequestedOutput(output_name)]
        kwargs = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        result = self.call(f"infer {model}", self.client.infer, model, [tensor], outputs=wanted, **kwargs)
        return result.as_numpy(output_name)


def _connect(request: TritonBench) -> _Connection:
    connection = _Connection(request.url, request.protocol, request.timeout_s)
    live = False
    try:
        live = connection.client.is_server_live()
    except Exception as exc:  # noqa: BLE001 - down, refused, wrong protocol on that port: all say "not there"
        raise RftrtError(
            f"no Triton server answers at {request.url} over {request.protocol} ({' '.join(str(exc).split())[:200]}); start it, or check --url and --protocol"
        ) from None
    if not live:
        raise RftrtError(f"the Triton server at {request.url} is not live; check its log")
    return connection


def _listing(connection: _Connection) -> str:
    """`` (its repository has a, b)``, or nothing where the server keeps its repository API closed."""
    kwargs = {"as_json": True} if connection.protocol == "grpc" else {}
    try:
        index = connection.call("list its models", connection.client.get_model_repository_index, **kwargs)
    except RftrtError:
        return ""
    models = index.get("models", []) if isinstance(index, dict) else index
    return f" (its repository has {', '.join(sorted({m['name'] for m in models})) or 'no models'})"


def _check_model(connection: _Connection, model: str, spec: BuildSpec) -> tuple[dict, dict]:
    """The model's metadata and config, once they show the bundle's inputs and outputs."""
    if not connection.call(f"say whether {model} is ready", connection.client.is_model_ready, model):
        raise RftrtError(f"model {model} is not ready on the server at {connection.url}{_listing(connection)}; load it, or name another with --triton-model")
    meta, config = connection.metadata(model), connection.config(model)
    inputs = {t["name"]: t for t in meta.get("inputs", [])}
    outputs = {t["name"]: t for t in meta.get("outputs", [])}
    if spec.input_name not in inputs or spec.output_name not in outputs:
        raise RftrtError(
            f"the server's {model} takes {sorted(inputs)} and answers {sorted(outputs)}, the bundle's model takes {spec.input_name} "
            f"and answers {spec.output_name}: is it the bundle's model?"
        )
    shape = [int(d) for d in inputs[spec.input_name]["shape"]]
    if shape[1:] != [3, spec.resolution, spec.resolution]:
        raise RftrtError(f"the server's {model} takes {spec.input_name} of shape {shape}, the bundle's is [N, 3, {spec.resolution}, {spec.resolution}]")
    return meta, config


def _reference(spec: BuildSpec, golden: Golden, platform: str, bundle_files: set[str]) -> tuple[np.ndarray, str, str]:
    """The golden logits the served model must match, the tolerance kind, and the reference's name."""
    if platform == TRITON["platforms"]["tensorrt"]:
        return golden.logits, ENGINE_TOLERANCE[spec.precision], "ONNX Runtime (bundle)"
    onnx_file, key = onnx_variant(spec, bundle_files)
    return getattr(golden, key), "fp32", f"ONNX Runtime ({onnx_file})"


# --- the load test ------------------------------------------------------------------------------


def _stream(connection: _Connection, args: tuple, warmup: int, requests: int, start: threading.Barrier, out: list, errors: list) -> None:
    try:
        for _ in range(warmup):
            connection.infer(*args)
        start.wait()
        for _ in range(requests):
            began = time.perf_counter()
            connection.infer(*args)
            out.append((time.perf_counter() - began) * 1000.0)
    except (RftrtError, threading.BrokenBarrierError) as exc:
        errors.append(exc)
        start.abort()


def _point(request: TritonBench, args: tuple, batch: int, concurrency: int) -> SweepPoint:
    """``concurrency`` streams of requests at ``batch``, each on its own connection, timed together."""
    connections = [_Connection(request.url, request.protocol, request.timeout_s) for _ in range(concurrency)]
    samples: list[float] = []
    errors: list[Exception] = []
    start = threading.Barrier(concurrency + 1)
    threads = [threading.Thread(target=_stream, args=(c, args, request.warmup, request.requests, start, samples, errors), daemon=True) for c in connections]
    for t in threads:
        t.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    began = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    for c in connections:
        c.client.close()
    if errors:
        raise RftrtError(str(errors[0]))
    stats = LatencyStats.from_samples(samples)
    return SweepPoint(batch, concurrency, len(samples), round(seconds, 4), stats, batch * len(samples) / seconds if seconds > 0 else math.inf)


def _batches(request: TritonBench, spec: BuildSpec, max_batch: int) -> list[int]:
    if max_batch == 0:  # a static engine: every request is its one batch
        if request.batches and list(request.batches) != [spec.batch.opt]:
            raise RftrtError(f"the served engine has a static batch of {spec.batch.opt}; leave out --batch or give --batch {spec.batch.opt}")
        return [spec.batch.opt]
    batches = sorted(set(request.batches or [1, min(spec.batch.opt, max_batch)]))
    for b in batches:
        if not 1 <= b <= max_batch:
            raise RftrtError(f"batch {b} is above the served model's max_batch_size {max_batch}; use --batch 1 to {max_batch}")
    return batches


def run_triton_bench(request: TritonBench) -> TritonReport:
    """Check the served model against the bundle, then load-test it (see the module's docstring)."""
    started = time.perf_counter()
    if not request.concurrencies or any(c < 1 for c in request.concurrencies) or request.requests < 1 or request.warmup < 0:
        raise RftrtError("concurrencies and timed requests must be at least 1, warm-up requests at least 0")
    report, spec = open_bundle(Path(request.bundle))
    golden = Golden.load(Path(request.bundle))
    model = request.model or plan_model_name(spec)
    connection = _connect(request)
    try:
        return _check_and_sweep(request, connection, spec, golden, model, {f.name for f in report.files}, started)
    finally:
        connection.client.close()


def _check_and_sweep(request: TritonBench, connection: _Connection, spec: BuildSpec, golden: Golden, model: str, files: set[str], started: float) -> TritonReport:
    meta, config = _check_model(connection, model, spec)
    platform = config.get("platform") or config.get("backend", "")
    max_batch = int(config.get("max_batch_size", 0))
    batches = _batches(request, spec, max_batch)
    datatype = next(t["datatype"] for t in meta["inputs"] if t["name"] == spec.input_name)
    dtype = np.float16 if datatype == "FP16" else np.float32
    golden = golden.at_batch(min(len(golden.images), max_batch) if max_batch else spec.batch.opt)
    answer = connection.infer(model, spec.input_name, spec.output_name, datatype, golden.images.astype(dtype))
    if answer is None or answer.shape != golden.logits.shape:
        shape = None if answer is None else list(answer.shape)
        raise RftrtError(f"the server's {model} answered {spec.output_name} of shape {shape} for {len(golden.images)} images; the bundle's reference is {list(golden.logits.shape)}")
    reference, kind, name = _reference(spec, golden, platform, files)
    check = compare(name, reference, f"Triton {model} ({platform})", answer, f"{len(golden.images)} golden images r{spec.resolution}", kind)
    server = connection.call("describe itself", connection.client.get_server_metadata, **({"as_json": True} if request.protocol == "grpc" else {}))
    result = TritonReport(request, model, platform, {"name": str(server.get("name", "")), "version": str(server.get("version", ""))}, kind, check, environment=collect_environment())
    if check.passed:
        for batch in batches:
            images = golden.at_batch(batch).images.astype(dtype)
            args = (model, spec.input_name, spec.output_name, datatype, images)
            result.points += [_point(request, args, batch, c) for c in sorted(set(request.concurrencies))]
    result.seconds = time.perf_counter() - started
    return result


# --- outputs ------------------------------------------------------------------------------------


def _plot(report: TritonReport, path: Path) -> Path:
    """PNG: images/s against concurrency, one line per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for batch in sorted({p.batch for p in report.points}):
        points = [p for p in report.points if p.batch == batch]
        ax.plot([p.concurrency for p in points], [p.throughput_img_s for p in points], marker="o", label=f"batch {batch}")
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrency (requests in flight)")
    ax.set_ylabel("throughput (images/s; axis from 0)")
    ax.set_title(f"{report.model} ({report.platform}) on Triton {report.server.get('version', '')}", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_triton_outputs(report: TritonReport, json_path=None, markdown_path=None, plot_path=None, folder=None) -> list[Path]:
    """:func:`~rftrt.tools.bench.report.write_report_files` for a Triton run (no plot without points)."""
    plot = (lambda path: _plot(report, path)) if report.points else None
    return write_report_files(report.as_dict(), report.markdown, plot, json_path, markdown_path, plot_path, folder)
