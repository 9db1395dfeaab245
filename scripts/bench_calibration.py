#!/usr/bin/env python3
"""INT8 calibration benchmarks: speed on rf_b1, the library comparison, and the method comparison.

    python scripts/bench_calibration.py [--sections timing,library,methods] [--json FILE]

timing   ``rf-calib`` on 512 images of rf_b1 at 224 (the issue's budget: ≤ 3 minutes on CI's 2
         cores), timed as a user runs it: a fresh process, imports included. The FP32 ONNX is rf_b1
         (seeded random weights: speed does not depend on them) exported and passed as ``rf-export``
         does. The 512 images are synthesised from the 8 bundled photographs, deterministically:
         image k is photograph k mod 8, cropped (random-resized-crop: 35–100 % of the area, aspect
         3/4–4/3), flipped for odd k // 8, rotated by up to ±12°, with brightness and contrast scaled
         by 0.8–1.2, all drawn from ``numpy.random.default_rng(k)``, saved as 320×320 JPEG (quality 90)
         in a temporary folder, so the whole data path (listing, decoding, resizing) is timed.
library  where onnxruntime.quantization's calibrators spend their time, against ours, on the same
         rf_b1 activations: histogram collection (``HistogramCollector.collect_absolute_value`` vs
         ``AbsHistogram.add``) and the entropy threshold (``HistogramCollector.get_entropy_threshold``
         with 2048 bins vs :func:`entropy_amax`), per tensor; plus, with ``--ort-end-to-end``, ORT's own
         Entropy calibrator (2048 bins) end to end on ``--library-images`` images.
methods  entropy vs percentile vs minmax on the digits model (rftrt/data/digits_rf.pt): for 4 disjoint
         calibration sets of 256 training images each, held-out top-1 of FP32, FP16 (precision plan),
         INT8 Q/DQ (FP32 rest) and INT8 typed (FP16 rest), top-1 agreement with FP32 and mean |Δlogit|.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from rftrt.data.images import sample_image_paths

SECTIONS = ("timing", "library", "methods")


# --- data -----------------------------------------------------------------------------------------


def synthesise_images(folder: Path, count: int = 512, size: int = 320) -> list[Path]:
    """``count`` JPEGs made from the bundled photographs (see the module docstring)."""
    photos = [Image.open(p).convert("RGB") for p in sample_image_paths()]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        rng = np.random.default_rng(k)
        image = photos[k % len(photos)]
        w, h = image.size
        area = rng.uniform(0.35, 1.0) * w * h
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(min(w, round(np.sqrt(area * aspect)))), int(min(h, round(np.sqrt(area / aspect))))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        out = image.crop((left, top, left + cw, top + ch))
        if (k // len(photos)) % 2:
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out = out.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BILINEAR)
        out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.8, 1.2)))
        out = ImageEnhance.Contrast(out).enhance(float(rng.uniform(0.8, 1.2)))
        out = out.resize((size, size), Image.Resampling.BICUBIC)
        path = folder / f"{k // 64:02d}" / f"img{k:04d}.jpg"
        path.parent.mkdir(exist_ok=True)
        out.save(path, quality=90)
        paths.append(path)
    return paths


def rf_b1_onnx(resolution: int = 224):
    """rf_b1 (seeded random weights) exported and passed as ``rf-export --int8`` ships it."""
    import torch

    from rftrt.export.prepare import export_and_pass
    from rftrt.models import create

    torch.manual_seed(0)
    return export_and_pass(create("rf_b1", resolution), resolution, "fp16").passed


# --- sections -------------------------------------------------------------------------------------


def timing(work: Path, runs: int, methods: list[str]) -> dict:
    import onnx

    onnx_path = work / "rf_b1.onnx"
    onnx.save(rf_b1_onnx(), onnx_path)
    start = time.perf_counter()
    synthesise_images(work / "images")
    print(f"synthesised 512 images in {time.perf_counter() - start:.1f} s")
    exe = shutil.which("rf-calib", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        raise SystemExit("rf-calib not found: install the project first (make venv)")
    results = {}
    for method in methods:
        times = []
        for run in range(runs):
            out = work / f"out-{method}-{run}"
            argv = [exe, str(onnx_path), "--calib-dir", str(work / "images"), "--calib-images", "512",
                    "--target", "orin", "--calib-method", method, "--out", str(out), "--json", str(out) + ".json"]
            t0 = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True)
            elapsed = time.perf_counter() - t0
            if proc.returncode not in (0, 1):
                print(proc.stdout, proc.stderr, sep="\n")
                raise SystemExit(f"rf-calib failed with exit code {proc.returncode}")
            report = json.loads(Path(str(out) + ".json").read_text())
            phases = {k: round(v, 1) for k, v in report["seconds"].items()}
            print(f"{method:10s} run {run + 1}: {elapsed:6.1f} s wall   phases {phases}")
            times.append(elapsed)
        results[method] = {"runs": [round(t, 1) for t in times], "median_s": round(statistics.median(times), 1)}
    command = "rf-calib rf_b1.onnx --calib-dir images/ --calib-images 512 --target orin --calib-method <method>"
    return {"command": command, "images": 512, "model": "rf_b1 r224 (FP32 ONNX after passes)", "results": results}


def library(images: int, end_to_end: bool) -> dict:
    """Our histogram and entropy code against onnxruntime.quantization's, on rf_b1 activations."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import HistogramCollector

    from rftrt.data.images import Preprocess
    from rftrt.data.sources import ImageSource
    from rftrt.precision.cache import cache_tensors
    from rftrt.precision.ranges import AbsHistogram, _probe_model, entropy_amax

    model = rf_b1_onnx()
    names = cache_tensors(model)[1:]  # node outputs
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(_probe_model(model, names).SerializeToString(), options, providers=["CPUExecutionProvider"])
    with tempfile.TemporaryDirectory() as tmp:
        synthesise_images(Path(tmp), images)
        x = ImageSource.from_folder(tmp, Preprocess.for_resolution(224), images).load_all()
    batches = []
    for s in range(0, len(x), 8):
        out = session.run(names, {"images": x[s : s + 8]})
        batches.append(dict(zip(names, out)))
    elements = sum(a.size for b in batches for a in b.values())

    # histogram collection, batch by batch (ORT re-bins with explicit edges after the first batch)
    collector = HistogramCollector("percentile", True, 2048, 128, 99.99, "same")
    copies = [{k: v.copy() for k, v in b.items()} for b in batches]
    t0 = time.perf_counter()
    for b in copies:
        collector.collect_absolute_value(b)
    ort_collect = time.perf_counter() - t0
    ours = {name: AbsHistogram() for name in names}
    scratch = np.empty(max(a.size for b in batches for a in b.values()), dtype=np.int64)
    copies = [{k: v.copy() for k, v in b.items()} for b in batches]
    t0 = time.perf_counter()
    for b in copies:
        for name, value in b.items():
            ours[name].add(value, float(np.max(np.abs(value))), scratch)
    our_collect = time.perf_counter() - t0

    # entropy threshold per tensor: ORT's (signed 2048-bin histogram, Python loop) vs ours
    signed = HistogramCollector("entropy", True, 2048, 128, 99.99, "same")
    for b in batches:
        signed.collect_value(b)
    sample = names[:: max(1, len(names) // 12)][:12]
    t0 = time.perf_counter()
    for name in sample:
        signed.get_entropy_threshold(signed.histogram_dict[name], 128)
    ort_entropy = (time.perf_counter() - t0) / len(sample)
    t0 = time.perf_counter()
    for name in names:
        entropy_amax(ours[name].hist, ours[name].width)
    our_entropy = (time.perf_counter() - t0) / len(names)
    result = {
        "images": images,
        "tensors": len(names),
        "elements": elements,
        "collect_s": {"onnxruntime": round(ort_collect, 2), "rftrt": round(our_collect, 2), "ratio": round(ort_collect / our_collect, 1)},
        "entropy_per_tensor_s": {"onnxruntime_2048": round(ort_entropy, 3), "rftrt": round(our_entropy, 4), "ratio": round(ort_entropy / our_entropy, 0)},
        "entropy_all_tensors_s": {"onnxruntime_2048": round(ort_entropy * len(names), 1), "rftrt": round(our_entropy * len(names), 2)},
    }
    print(f"histogram collection, {images} images ({elements / 1e6:.0f} M values): onnxruntime {ort_collect:.1f} s, rftrt {our_collect:.1f} s ({ort_collect / our_collect:.1f}x)")
    print(f"entropy threshold per tensor: onnxruntime (2048 bins) {ort_entropy:.3f} s, rftrt {our_entropy * 1000:.1f} ms ({ort_entropy / our_entropy:.0f}x); "
          f"all {len(names)} tensors: {ort_entropy * len(names):.0f} s vs {our_entropy * len(names):.1f} s")

    if end_to_end:
        import onnx
        from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

        class Reader:
            def __init__(self):
                self.it = iter(range(0, len(x), 8))

            def get_next(self):
                s = next(self.it, None)
                return None if s is None else {"images": x[s : s + 8]}

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            onnx.save(model, path)
            t0 = time.perf_counter()
            cal = create_calibrator(path, augmented_model_path=str(Path(tmp) / "a.onnx"), calibrate_method=CalibrationMethod.Entropy,
                                    extra_options={"num_bins": 2048, "symmetric": True})
            cal.collect_data(Reader())
            cal.compute_data()
            ort_total = time.perf_counter() - t0
        from rftrt.precision.ranges import collect_ranges

        t0 = time.perf_counter()
        collect_ranges(model, (x[s : s + 8] for s in range(0, len(x), 8)), cache_tensors(model), "entropy")
        our_total = time.perf_counter() - t0
        result["end_to_end_s"] = {"onnxruntime_entropy_2048": round(ort_total, 1), "rftrt_entropy": round(our_total, 1), "ratio": round(ort_total / our_total, 1)}
        print(f"end to end, entropy, {images} images: onnxruntime {ort_total:.0f} s, rftrt {our_total:.1f} s ({ort_total / our_total:.0f}x)")
    return result


def methods(subsets: int = 4, per_subset: int = 256) -> dict:
    """Held-out accuracy of each calibration method on the digits model."""
    from rftrt.data.digits import load_digits_data
    from rftrt.data.sources import ArraySource
    from rftrt.export.onnxrt import onnx_logits
    from rftrt.export.prepare import export_and_pass
    from rftrt.models.digits import load_checkpoint
    from rftrt.precision.accuracy import topk_accuracy
    from rftrt.precision.int8 import calibrate
    from rftrt.precision.plan import plan_precision
    from rftrt.precision.ranges import METHODS
    from rftrt.precision.render import render_fp16
    from rftrt.targets.profiles import load_target

    data = load_digits_data()
    digits_model = load_checkpoint()
    fp32_model = export_and_pass(digits_model, digits_model.resolution, "fp16").passed
    y = data.test_labels
    order = np.arange(len(data.train_images))
    plan = plan_precision(fp32_model, data.train_images[:8], "8 training digits")
    fp32 = onnx_logits(fp32_model, data.test_images)
    fp16 = onnx_logits(render_fp16(fp32_model, set(plan.fp32_nodes)), data.test_images)
    out = {"fp32_top1": topk_accuracy(fp32, y), "fp16_top1": topk_accuracy(fp16, y), "held_out": int(len(y)), "methods": {}}
    print(f"digits held-out ({len(y)} images): FP32 {out['fp32_top1']:.2%}, FP16 (plan) {out['fp16_top1']:.2%}")
    target = load_target("l40")  # strongly typed: both the FP32-rest and the FP16-rest Q/DQ renderings
    for method in METHODS:
        rows = []
        for k in range(subsets):
            calib = data.train_images[order[k::subsets][:per_subset]]
            r = calibrate(fp32_model, ArraySource(calib), target=target, method=method, plan=plan, progress=False, log=lambda _: None)
            q = onnx_logits(r.qdq_model, data.test_images)
            t = onnx_logits(r.typed_model, data.test_images)
            rows.append({
                "int8_top1": topk_accuracy(q, y),
                "int8_fp16_top1": topk_accuracy(t, y),
                "agreement": float(np.mean(q.argmax(1) == fp32.argmax(1))),
                "mean_abs_logit_error": float(np.mean(np.abs(q - fp32))),
            })
        summary = {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}
        summary["int8_top1_min"] = min(r["int8_top1"] for r in rows)
        out["methods"][method] = {"subsets": rows, "mean": summary}
        print(f"{method:10s} INT8 top-1 {summary['int8_top1']:.2%} (min {summary['int8_top1_min']:.2%}), INT8+FP16 {summary['int8_fp16_top1']:.2%}, "
              f"agreement {summary['agreement']:.2%}, mean |Δlogit| {summary['mean_abs_logit_error']:.4f}")
    ranked = sorted(METHODS, key=lambda m: (-out["methods"][m]["mean"]["agreement"], out["methods"][m]["mean"]["mean_abs_logit_error"]))
    image = 1.0 / len(y)  # one held-out image, in accuracy units
    best = out["methods"][ranked[0]]["mean"]
    tied = [m for m in ranked if best["agreement"] - out["methods"][m]["mean"]["agreement"] < image
            and best["int8_top1"] - out["methods"][m]["mean"]["int8_top1"] < image]
    out["ranking"], out["tied_with_best"] = ranked, tied
    print(f"ranking (agreement with FP32, then logit error): {', '.join(ranked)}; within one held-out image of the best: {', '.join(tied)}")
    from rftrt.precision.ranges import DEFAULT_METHOD

    out["default"] = DEFAULT_METHOD
    print(f"rf-calib default: {DEFAULT_METHOD} (docs/int8.md: among the methods tied on digits, the one that bounds a single outlier's effect)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="timing,library,methods")
    parser.add_argument("--runs", type=int, default=1, help="timing runs per method")
    parser.add_argument("--timing-methods", default="entropy", help="comma-separated methods to time (entropy,percentile,minmax)")
    parser.add_argument("--library-images", type=int, default=16)
    parser.add_argument("--ort-end-to-end", action="store_true", help="also run ORT's Entropy calibrator (2048 bins) end to end (minutes)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    chosen = [s for s in args.sections.split(",") if s]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; available: {', '.join(SECTIONS)}")
    import torch

    torch.set_num_threads(2)
    report: dict = {"cpus": os.cpu_count(), "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="rftrt-bench-calib-") as tmp:
        if "timing" in chosen:
            report["timing"] = timing(Path(tmp), args.runs, args.timing_methods.split(","))
        if "library" in chosen:
            report["library"] = library(args.library_images, args.ort_end_to_end)
        if "methods" in chosen:
            report["methods"] = methods()
    report["load_average_end"] = os.getloadavg()
    print(f"load average: start {report['load_average_start'][0]:.2f}, end {report['load_average_end'][0]:.2f} (on {report['cpus']} cores)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
