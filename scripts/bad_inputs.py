#!/usr/bin/env python3
"""Try every command with bad input, the way a new user would, and tabulate what happens.

    python scripts/bad_inputs.py [--checkout DIR] [--json FILE] [--only NAME[,NAME…]]

Each case runs one command in a fresh folder and records its exit code, the message a user sees
(the last line of stderr, or of stdout when stderr is empty), whether a traceback was printed, and
what the command left behind that it should not have. `--checkout` runs the cases against another
checkout of rftrt (an older commit, say) through PYTHONPATH, so the same cases give a before/after
table. The console scripts are taken from that checkout's setup.cfg.
"""
from __future__ import annotations

import argparse
import configparser
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "rftrt" / "data" / "images"


@dataclass
class Case:
    name: str
    what: str
    command: str                       # shell words; {tmp} (a fresh folder) and the fixtures' names are filled in
    head: bool = False                 # read one line of stdout, then close the pipe
    left_behind: tuple[str, ...] = ()  # paths (under {tmp}) that must not exist afterwards
    bundle_untouched: bool = False     # the bundle must still hold only what its manifest lists


CASES = [
    # the items of the rough-edges list
    Case("calib-default-out", "rf-calib on a bundle's ONNX, default output", "rf-calib {bundle}/rf_b1.onnx --calib-dir {photos}", bundle_untouched=True),
    Case("calib-unwritable", "rf-calib --out under a file", "rf-calib {bundle}/rf_b1.onnx --calib-dir {photos} --out {file}/c"),
    Case("bench-unwritable", "rf-bench --json under a file", "rf-bench --model rf_b1 --backend ort --batch 1 --rounds 1 --iterations 2 --json {file}/b.json"),
    Case("export-unwritable", "rf-export --out under a file", "rf-export --model rf_b1 --out {file}/b"),
    Case("inspect-unwritable", "rf-inspect --json under a file", "rf-inspect --model rf_b1 --json {file}/i.json"),
    Case("export-json-missing-dir", "rf-export --json into a missing folder", "rf-export --model rf_b1 --out {tmp}/b --json {tmp}/no/such/r.json",
         left_behind=("b",)),
    Case("list-models-head", "rf-export --list-models | head -1", "rf-export --list-models", head=True),
    Case("export-head", "rf-export … | head -1", "rf-export --model rf_b1 --out {tmp}/b", head=True),
    Case("verbose-bad-model", "--verbose with a bad model name", "rf-export --model rf_b9 --verbose"),
    Case("dynamic-batch-dla", "a dynamic --batch with --dla", "rf-export --model rf_b1 --target orin --dla 0 --batch 1:4:8 --out {tmp}/b",
         left_behind=("b",)),
    Case("dynamic-batch-static", "a dynamic --batch with --static", "rf-export --model rf_b1 --static --batch 1:4:8 --out {tmp}/b", left_behind=("b",)),
    Case("bench-empty-batch", "rf-bench --batch 1,,2", "rf-bench --model rf_b1 --backend ort --batch 1,,2 --rounds 1 --iterations 2"),
    Case("calib-images-negative", "--calib-images -5 without --calib-dir", "rf-export --model rf_b1 --int8 --calib-images -5 --out {tmp}/b",
         left_behind=("b",)),
    Case("calib-dir-empty", "an empty --calib-dir", "rf-export --model rf_b1 --int8 --calib-dir {empty} --out {tmp}/b", left_behind=("b",)),
    Case("calib-dir-corrupt", "a --calib-dir of corrupt images", "rf-export --model rf_b1 --int8 --calib-dir {corrupt} --out {tmp}/b",
         left_behind=("b",)),
    Case("calib-batch-zero", "--calib-batch 0", "rf-export --model rf_b1 --int8 --calib-dir {photos} --calib-batch 0 --out {tmp}/b", left_behind=("b",)),
    Case("verify-batch-zero", "rf-verify --batch 0", "rf-verify --bundle {bundle} --batch 0 {file}"),
    Case("weights-random-bytes", "a checkpoint of random bytes", "rf-export --model rf_b1 --weights {random} --out {tmp}/b", left_behind=("b",)),
    Case("weights-truncated", "a truncated checkpoint", "rf-export --model rf_b1 --weights {truncated} --out {tmp}/b", left_behind=("b",)),
    # ten more, across the commands
    Case("resolution-odd", "a resolution that is not a multiple of 32", "rf-export --model rf_b1 --resolution 230 --out {tmp}/b", left_behind=("b",)),
    Case("target-unknown", "an unknown target", "rf-export --model rf_b1 --target mars --out {tmp}/b", left_behind=("b",)),
    Case("trt-version-unknown", "a TensorRT release that does not exist for the target", "rf-export --model rf_b1 --trt-version 7.1 --out {tmp}/b",
         left_behind=("b",)),
    Case("export-out-is-bundle", "rf-export onto an existing bundle without --force", "rf-export --model rf_b1 --out {bundle}",
         bundle_untouched=True),
    Case("build-not-a-bundle", "rf-build on an ordinary folder", "rf-build {empty}"),
    Case("build-edited-bundle", "rf-build on a bundle whose ONNX was edited", "rf-build {edited}"),
    Case("bench-zero-iterations", "rf-bench --iterations 0", "rf-bench --model rf_b1 --backend ort --batch 1 --iterations 0"),
    Case("inspect-unknown-model", "rf-inspect on a model that does not exist", "rf-inspect --model evit_b9"),
    Case("eval-empty-data", "rf-eval on a folder with no class folders", "rf-eval --model rf_b1 --data {empty}"),
    Case("calib-not-onnx", "rf-calib on a file that is not ONNX", "rf-calib {file} --calib-dir {photos} --out {tmp}/c", left_behind=("c",)),
    Case("kit-outside-bundle", "the device kit copied out of its bundle", "python3 {kit} info"),
    Case("kit-edited-bundle", "the device kit's build in a bundle whose ONNX was edited", "python3 {edited}/rftrt-device.pyz build"),
]


@dataclass
class Outcome:
    name: str
    what: str
    command: str
    exit_code: int | None
    message: str
    traceback: bool
    seconds: float
    problems: list[str] = field(default_factory=list)


def console_scripts(checkout: Path) -> dict[str, str]:
    cfg = configparser.ConfigParser()
    cfg.read(checkout / "setup.cfg")
    scripts = {}
    for line in cfg["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip()
    return scripts


def argv_for(words: list[str], scripts: dict[str, str]) -> list[str]:
    """A console script as `python -c` on the checkout; `python3` as this interpreter. Run it outside
    any checkout: `python -c` puts the working folder first on sys.path, before PYTHONPATH."""
    head, rest = words[0], words[1:]
    if head == "python3":
        return [sys.executable, *rest]
    module, _, func = scripts[head].partition(":")
    code = f"import sys; sys.argv[0] = {head!r}; from {module} import {func}; sys.exit({func}())"
    return [sys.executable, "-c", code, *rest]


def make_fixtures(shared: Path, scripts: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    """Inputs the cases share: bad files and folders, one bundle, an edited copy, its kit alone."""
    (shared / "empty").mkdir()
    (shared / "corrupt" / "x").mkdir(parents=True)
    (shared / "corrupt" / "x" / "a.jpg").write_bytes(b"not a jpeg at all")
    (shared / "file").write_text("an ordinary file\n")
    (shared / "random.pt").write_bytes(os.urandom(4096))
    import torch  # only for the truncated-checkpoint fixture

    torch.save({"a": torch.zeros(1000)}, shared / "weights.pt")
    (shared / "truncated.pt").write_bytes((shared / "weights.pt").read_bytes()[:2000])
    bundle, edited = shared / "bundle", shared / "edited"
    subprocess.run(argv_for(["rf-export", "--model", "rf_b1", "--out", str(bundle)], scripts), env=env, check=True, capture_output=True, cwd=shared)
    shutil.copytree(bundle, edited)
    onnx = edited / "rf_b1.onnx"
    data = bytearray(onnx.read_bytes())
    data[-100] ^= 0xFF
    onnx.write_bytes(bytes(data))
    (shared / "kit").mkdir()
    if (bundle / "rftrt-device.pyz").exists():
        shutil.copy(bundle / "rftrt-device.pyz", shared / "kit")
    names = ("empty", "corrupt", "file", "random", "truncated", "bundle", "edited")
    paths = ("empty", "corrupt", "file", "random.pt", "truncated.pt", "bundle", "edited")
    places = {name: str(shared / path) for name, path in zip(names, paths)}
    return dict(places, photos=str(PHOTOS), kit=str(shared / "kit" / "rftrt-device.pyz"), kit_folder=str(shared / "kit"))


def unlisted_files(bundle: Path) -> list[str]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    listed = set(manifest["files"]) | {"manifest.json"}
    return sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file() and str(p.relative_to(bundle)) not in listed)


def _placeholders(text: str, places: dict[str, str]) -> str:
    """A message with this run's temporary paths written as the case's placeholders, so that tables
    from two runs line up."""
    for name, path in sorted(places.items(), key=lambda item: -len(item[1])):
        text = text.replace(path, "{" + name + "}")
    return text.replace(sys.executable, "python3")


def run_case(case: Case, places: dict[str, str], scripts: dict[str, str], env: dict[str, str]) -> Outcome:
    words = [w.format(**places) for w in shlex.split(case.command)]
    bundle = Path(places["bundle"]) if case.bundle_untouched else None
    unlisted_before = set(unlisted_files(bundle)) if bundle else set()
    start = time.perf_counter()
    if case.head:
        proc = subprocess.Popen(argv_for(words, scripts), env=env, cwd=places["tmp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.stderr.read()
        code, stdout = proc.wait(), ""
    else:
        done = subprocess.run(argv_for(words, scripts), env=env, cwd=places["tmp"], capture_output=True, text=True, timeout=600)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    seconds = time.perf_counter() - start
    lines = [_placeholders(line, places) for line in (stderr or stdout).splitlines() if line.strip()]
    problems = [f"left {name}" for name in case.left_behind if code != 0 and (Path(places["tmp"]) / name).exists()]
    if bundle:
        problems += [f"wrote {name} inside the bundle" for name in unlisted_files(bundle) if name not in unlisted_before]
    return Outcome(case.name, case.what, case.command, code, lines[-1][:160] if lines else "", "Traceback (most recent call last)" in stderr,
                   round(seconds, 1), problems)


def run_all(checkout: Path, only: set[str] | None) -> list[Outcome]:
    scripts = console_scripts(checkout)
    env = dict(os.environ, PYTHONPATH=str(checkout))
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="rftrt-bad-inputs-") as shared:
        fixtures = make_fixtures(Path(shared), scripts, env)
        for case in (c for c in CASES if not only or c.name in only):
            with tempfile.TemporaryDirectory(prefix="rftrt-case-") as tmp:
                outcome = run_case(case, dict(fixtures, tmp=tmp), scripts, env)
            print(f"{case.name}: exit {outcome.exit_code} — {outcome.message}", file=sys.stderr)
            outcomes.append(outcome)
    return outcomes


def markdown(outcomes: list[Outcome]) -> str:
    rows = ["| case | command | exit | s | traceback | message | problems |", "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        message = o.message.replace("|", "\\|")
        rows.append(f"| {o.what} | `{o.command}` | {o.exit_code} | {o.seconds:.1f} | {'yes' if o.traceback else 'no'} | {message} | {'; '.join(o.problems) or '—'} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the rftrt checkout to try (default: this one)")
    parser.add_argument("--json", type=Path, help="write the outcomes as JSON")
    parser.add_argument("--only", help="comma-separated case names")
    args = parser.parse_args()
    outcomes = run_all(args.checkout.resolve(), set(args.only.split(",")) if args.only else None)
    print(markdown(outcomes))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
