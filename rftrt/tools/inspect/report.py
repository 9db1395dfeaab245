"""The whole inspection of one model: the views assembled into an :class:`InspectReport`, its
terminal and Markdown rendering, and its files (``--json``, ``--markdown``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from ...export.passes import to_graph
from ...files import write_file_atomic
from ...targets.hardware import Hardware, hardware
from ..paper_tables import PaperRow, paper_row
from ..tables import render_table
from .complexity import ComplexityReport, complexity_report, graph_macs
from .dla import DlaPrediction, predict_dla
from .exported import ExportedModel, export_and_pass
from .histogram import OpHistogram, op_histogram
from .limits import LIMIT_KINDS, Limit, compulsory_from_graph, compute_limits
from .traffic import TRAFFIC_RULES, TrafficEstimate, fused_schedule, memory_traffic

if TYPE_CHECKING:
    from ...precision.plan import PrecisionPlan
    from ...targets.profiles import Target

__all__ = ["InspectReport", "format_inspect", "inspect_model", "write_inspect_json", "write_inspect_markdown"]


@dataclass
class InspectReport:
    model: str | None
    resolution: int
    precision: str
    complexity: ComplexityReport | None
    histogram: OpHistogram
    traffic: TrafficEstimate
    macs_per_image: int
    limits: list[Limit]
    hardware: list[Hardware]
    #: the paper's measurements of this model and resolution, if it has any
    paper: PaperRow | None
    dla: DlaPrediction | None
    target: str | None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "resolution": self.resolution,
            "precision": self.precision,
            "complexity": self.complexity.as_dict() if self.complexity else None,
            "op_histogram": self.histogram.as_dict(),
            "memory_traffic": self.traffic.as_dict(),
            "macs_per_image": self.macs_per_image,
            "limits": [limit.as_dict() for limit in self.limits],
            "limit_kinds": dict(LIMIT_KINDS),
            "paper": asdict(self.paper) if self.paper else None,
            "hardware": [h.as_dict() for h in self.hardware],
            "target": self.target,
            "dla_placement": self.dla.as_dict() if self.dla else None,
            "notes": list(self.notes),
        }


def _model_name(name: str | None, onnx_model: onnx.ModelProto | None) -> str | None:
    """``name``, or the model an ONNX's metadata names (as ``rf-export`` writes it); checked against the registry."""
    if onnx_model is not None and name is None:
        props = {p.key: p.value for p in onnx_model.metadata_props}
        name = props.get("model")
    if name is not None:
        from ...models import model_info

        model_info(name)  # an unknown name fails here, listing the known ones
    return name


def _dla_on_target(exported: ExportedModel, tgt: Target, plan: PrecisionPlan | None, precision: str) -> DlaPrediction:
    """The DLA placement on target ``tgt``, with the precision plan's FP32 nodes kept on the GPU."""
    reasons: dict[str, str] = dict(plan.reasons) if plan else {}
    dla = predict_dla(to_graph(exported.after), precision, reasons, tgt.name, tgt.dla_core)
    dla.notes.insert(0, f"TensorRT {tgt.release.version} ({tgt.release.dialect}ly typed) on {tgt.display}")
    return dla


def inspect_model(
    name: str | None,
    resolution: int = 224,
    onnx_model: onnx.ModelProto | None = None,
    target: str | None = None,
    gpus: tuple[str, ...] = ("orin", "l40", "h100", "h200"),
    precision: str = "fp16",
    batches: tuple[int, ...] = (1, 8, 32),
    dla_core: int | None = None,
) -> InspectReport:
    """Everything ``rf-inspect`` prints, as data; ``dla_core`` places the network on that DLA core of ``target``."""
    from ...precision.plan import plan_on_photographs

    hw = [hardware(g) for g in gpus]
    tgt = None
    if target is not None:
        from ...targets.profiles import load_target

        tgt = load_target(target, dla_core=dla_core)
    name = _model_name(name, onnx_model)
    dla_batch = tgt.batch.opt if tgt is not None and tgt.dla_core is not None else None
    exported = export_and_pass(name, resolution, precision, onnx_model, dla_batch=dla_batch)
    notes: list[str] = []
    complexity = None
    if name is not None:
        complexity = complexity_report(name, resolution, exported.torch_model, exported.after)
        macs = complexity.macs
    else:
        macs = graph_macs(exported.after)
        notes.append("no model name (not given, not in the ONNX metadata): parameters per stage not counted; MACs from the graph")
    plan = plan_on_photographs(exported.after, resolution) if precision == "fp16" else None
    fp32_nodes = set(plan.reasons) if plan else None
    traffic = memory_traffic(exported.after, precision, fp32_nodes)
    limits = compute_limits(compulsory_from_graph(exported.after), traffic, fused_schedule(exported.after, precision, fp32_nodes), hw, batches)
    dla = None
    if tgt is not None:
        if tgt.dla_cores > 0:
            dla = _dla_on_target(exported, tgt, plan, precision)
        else:
            notes.append(f"{tgt.display} has no DLA: every node runs on the GPU")
    return InspectReport(
        model=name,
        resolution=resolution,
        precision=precision,
        complexity=complexity,
        histogram=op_histogram(exported),
        traffic=traffic,
        macs_per_image=macs,
        limits=limits,
        hardware=hw,
        paper=paper_row(name, resolution),
        dla=dla,
        target=tgt.name if tgt else None,
        notes=notes,
    )


# --- rendering -----------------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f}"


def _opt(value: Any, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def _complexity_section(c: ComplexityReport) -> list[str]:
    out = ["", f"## Parameters and MACs ({c.display}; MACs = conv + linear + matmul multiply-accumulates, one image)", ""]
    rows = [
        [s.stage, f"{s.params:,}", _opt(s.official_params, ","), f"{s.macs / 1e6:.2f}", f"{s.params / c.params:.1%}", f"{s.macs / c.macs:.1%}"]
        for s in c.stages
    ]
    official_total = sum(s.official_params for s in c.stages) if all(s.official_params is not None for s in c.stages) else None
    rows.append(["total", f"{c.params:,}", _opt(official_total, ","), f"{c.macs / 1e6:.2f}", "100%", "100%"])
    out.append(render_table(["stage", "params", "official (spec §2.1)", "MACs (M)", "params %", "MACs %"], rows))
    published = f"published: {_opt(c.published_params_m, '.1f')}M params, {_opt(c.published_macs_g, '.2f')} GMACs at r{c.resolution} ({c.published_source})"
    if c.paper_resolution is not None:
        published += f"; ReduceFormer paper's table: {_opt(c.paper_params_m, '.1f')}M, {_opt(c.paper_macs_g, '.2f')} GMACs at r{c.paper_resolution}"
    out.append(published)
    out.append(f"ours: {c.params / 1e6:.2f}M params, {c.macs / 1e9:.3f} GMACs")
    if c.graph_macs is not None:
        same = "same" if c.graph_macs == c.macs else f"{(c.graph_macs - c.macs) / 1e6:+.2f} M: the LiteMLA rewrite computes the ones-row sums without a matrix product"
        out.append(f"MACs counted on the ONNX after the passes: {c.graph_macs / 1e6:.2f} M ({same})")
    if c.attention_elementwise:
        out.append(f"ReduceFormer attention cores: {c.attention_elementwise / 1e6:.2f} M element-wise multiplies/divides (not MACs)")
    return out


def _histogram_section(h: OpHistogram) -> list[str]:
    out = ["", f"## Op histogram: exported ({h.nodes_before} nodes) → after the passes ({h.nodes_after} nodes)", ""]
    out.append(render_table(["op", "exported", "after passes", "change"], [[op, b, a, f"{a - b:+d}" if a != b else ""] for op, b, a in h.rows()]))
    return out + [f"- {p}" for p in h.passes]


def _traffic_section(t: TrafficEstimate) -> list[str]:
    out = ["", f"## Memory traffic per image ({t.precision}" + (f"; {t.fp32_tensors} FP32-island tensors at 4 bytes" if t.fp32_tensors else "") + ")", ""]
    rows = [
        ["weights (read once per batch; batch 1)", _mb(t.weights_bytes), _mb(t.weights_bytes)],
        ["input (read) + logits (written), FP32", _mb(t.input_bytes + t.output_bytes), _mb(t.input_bytes + t.output_bytes)],
        ["activations (written + read)", _mb(t.activations_unfused_bytes), _mb(t.activations_fused_bytes)],
        ["  of which attention cores", _mb(t.attention_cores[0]), _mb(t.attention_cores[1])],
        ["  tensors materialised", t.tensors_unfused, t.tensors_fused],
        ["total MB per image, batch 1", _mb(t.per_image(False)), _mb(t.per_image(True))],
    ]
    rows += [[f"  activations in {stage}", _mb(a), _mb(b)] for stage, (a, b) in t.by_stage.items()]
    out.append(render_table(["", "unfused MB", "fused MB"], rows))
    out.append(f"unfused: {TRAFFIC_RULES['unfused']}.")
    out.append(f"fused: {TRAFFIC_RULES['fused']}.")
    return out


def _paper_measured(r: InspectReport, limit: Limit) -> list[str]:
    """The paper's throughput for this GPU and batch, and its share of our ceiling ("–" without one)."""
    measured = r.paper.measured_img_s().get((limit.gpu, limit.batch)) if r.paper else None
    if measured is None:
        return ["–", "–"]
    return [f"{measured:,.0f}", f"{measured / limit.ceiling_img_s:.1%}"]


def _limits_section(r: InspectReport) -> list[str]:
    out = ["", f"## Limits per batch (µs for the whole batch); MACs {r.macs_per_image / 1e6:.1f} M per image", ""]
    hw = {g.key: g for g in r.hardware}
    rows = [
        [f.gpu, f"{hw[f.gpu].memory_gb_s:,.0f}", f"{hw[f.gpu].fp16_dense_tflops:,.1f}", f"{hw[f.gpu].l2_mib:g}", f.batch,
         f"{f.lower_bound_us:,.1f} ({f.lower_bound_by})", f"{f.estimate_us:,.1f} ({f.estimate_by})", _mb(f.estimate_bytes / f.batch),
         f"{f.ceiling_img_s:,.0f}", *_paper_measured(r, f)]
        for f in r.limits
    ]  # fmt: skip
    headers = ["GPU", "GB/s", "FP16 TFLOPS", "L2 MiB", "batch", "lower bound µs", "model estimate µs", "estimate DRAM MB/image",
               "ceiling img/s", "paper img/s", "paper / ceiling"]  # fmt: skip
    out.append(render_table(headers, rows))
    out += [f"{kind}: {text}." for kind, text in LIMIT_KINDS.items()]
    out.append("ceiling img/s = batch × 10⁶ / lower bound: no implementation exceeds it. The model estimate is a model, not a limit.")
    if r.paper is not None:
        out.append(
            f"paper: the ReduceFormer paper's TensorRT FP16 measurements of this model at r{r.resolution} (Table 1: Orin latency at batch 1 "
            "as img/s, L40 batch 1; Table 2: L40 batch 8/16/32); its Orin is DRIVE Orin, ours the Jetson AGX Orin standing in for it"
        )
        if r.paper.orin_mb_per_image is not None:
            ours = next((f for f in r.limits if f.gpu == "orin" and f.batch == 1), None)
            beside = f"; ours on orin at batch 1: {_mb(ours.estimate_bytes)} MB (model estimate)" if ours else ""
            out.append(
                f"paper's Orin memory traffic (Table 1, Avg Mem BW): {r.paper.orin_mb_per_image:.2f} MB/image{beside}, "
                f"{_mb(r.traffic.per_image(True))} MB under the fused rule without L2"
            )
    for g in r.hardware:
        parts = [g.name, g.notes, f"L2: {g.l2_notes}" if g.l2_notes else ""]
        out.append(f"- {g.key}: " + ". ".join(p.rstrip(".") for p in parts if p) + ".")
    out.append("Figures and their sources: rftrt/targets/hardware.toml; the paper's: rftrt/tools/paper_tables.toml.")
    return out


def _dla_section(d: DlaPrediction, nodes: bool) -> list[str]:
    where = d.target + (f" DLA core {d.core}" if d.core is not None else "")
    out = ["", f"## DLA placement on {where}: {d.label}", ""]
    out.append(
        f"{d.count('DLA')} nodes on DLA, {d.count('GPU')} on the GPU; {d.transitions} transitions "
        f"({d.dla_to_gpu} DLA→GPU, {d.gpu_to_dla} GPU→DLA); {d.loadables} DLA loadables (a core holds {d.loadables_per_core}); "
        f"{d.io_reformats} network I/O reformats; without GPU fallback the build {'succeeds' if d.without_fallback else 'fails'}"
    )
    out += [f"- {n}" for n in d.notes]
    out += ["", render_table(["op", "DLA", "GPU", "reason (its first GPU node, else its first node)"], [list(row) for row in d.by_op()], "lrrl")]
    if nodes:
        out += ["", render_table(["#", "node", "op", "device", "rule", "reason"], [[i, p.name, p.op, p.device, p.rule, p.reason] for i, p in enumerate(d.placements)], "rlllll")]
    return out


def format_inspect(report: InspectReport, nodes: bool = True, markdown: bool = False) -> str:
    """The terminal rendering of an :class:`InspectReport`; with ``markdown`` its first line is a heading.
    ``nodes`` adds the per-node DLA placement table."""
    r = report
    out = [("# " if markdown else "") + f"rf-inspect: {r.model or '(unnamed ONNX)'} at {r.resolution}×{r.resolution}, {r.precision}"]
    if r.complexity is not None:
        out += _complexity_section(r.complexity)
    out += _histogram_section(r.histogram)
    out += _traffic_section(r.traffic)
    out += _limits_section(r)
    if r.dla is not None:
        out += _dla_section(r.dla, nodes)
    out += [f"note: {n}" for n in r.notes]
    return "\n".join(out)


def write_inspect_json(report: InspectReport, path: str | Path) -> None:
    """``report`` as JSON (keys sorted), written atomically."""
    write_file_atomic(Path(path), (json.dumps(report.as_dict(), indent=2, sort_keys=True) + "\n").encode())


def write_inspect_markdown(report: InspectReport, path: str | Path, nodes: bool = True) -> None:
    """``report`` rendered as Markdown, written atomically."""
    write_file_atomic(Path(path), (format_inspect(report, nodes, markdown=True) + "\n").encode())
