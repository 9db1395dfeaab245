"""Every TensorRT name the builder and the runtime use exists in each release they run with.

The names come from the code itself: each step of a build path and each method of the engine runner
declares what it touches (``@uses``), ``PATH_STEPS`` says which steps each path runs and
``dialect_path`` which path each release takes. The releases' names come from
``rftrt/engines/data/trt_api/trt-<version>.json``, extracted from the real TensorRT Python bindings
(``scripts/extract_trt_api.py``). A second group of tests parses each function's source to check that
its declaration is complete, so the table cannot drift from the code.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import textwrap
from functools import lru_cache
from pathlib import Path

import pytest

from rftrt.engines import build, build_decisions, build_plan, build_steps, cuda, plan_file, runner, sidecar, tensorrt_api
from rftrt.engines.build_plan import dialect_path, plan_build
from rftrt.engines.build_spec import BuildSpec
from rftrt.engines.build_steps import API_USED, PATH_STEPS
from rftrt.engines.cuda import CUDART_API_USED
from rftrt.engines.runner import RUNNER_API_USED, EngineRunner
from rftrt.engines.tensorrt_api import tensorrt_logger
from rftrt.errors import RftrtError
from rftrt.targets.batch import BatchProfile

DATA = Path(build_steps.__file__).parent / "data" / "trt_api"


@lru_cache(maxsize=None)
def apis() -> dict[str, dict]:
    return {api["tensorrt_version"]: api for api in (json.loads(p.read_text()) for p in sorted(DATA.glob("trt-*.json")))}


def _load_name_lookup():
    """The extraction script owns the name lookup over its data files; the test uses the same one."""
    path = Path(__file__).parents[1] / "scripts" / "trt_api" / "names.py"
    spec = importlib.util.spec_from_file_location("trt_api_names", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


has_name = _load_name_lookup().has_name


def paths_for(version: str) -> list[str]:
    """The dialect paths the builder takes on ``version`` (with either bundle dialect)."""
    paths = []
    for dialect in ("weak", "strong"):
        try:
            paths.append(dialect_path(version, dialect))
        except RftrtError:
            pass
    return paths


CASES = [(path, version) for version in apis() for path in paths_for(version)]


# --- coverage -----------------------------------------------------------------------------------


def test_the_data_covers_8_6_10_x_and_11_x():
    assert sorted(apis()) == ["10.16.1.11", "10.3.0", "11.4.0.106", "8.6.1"]


def test_each_release_runs_the_paths_it_should():
    assert sorted(CASES) == sorted(
        [
            ("weak-8.6", "8.6.1"),
            ("weak-10", "10.3.0"),
            ("strong-10", "10.3.0"),
            ("weak-10", "10.16.1.11"),
            ("strong-10", "10.16.1.11"),
            ("strong-11", "11.4.0.106"),
        ]
    )
    assert set(PATH_STEPS) == {path for path, _ in CASES}


# --- the conformance check itself ---------------------------------------------------------------


@pytest.mark.parametrize("path,version", CASES, ids=[f"{p}@{v}" for p, v in CASES])
def test_every_name_a_build_path_uses_exists_in_its_release(path, version):
    missing = [name for name in API_USED[path] if not has_name(apis()[version], name)]
    assert not missing, f"TensorRT {version} has no {missing} (used by the {path} path)"


@pytest.mark.parametrize("version", sorted(apis()))
def test_every_name_the_runtime_uses_exists_in_every_release(version):
    missing = [name for name in RUNNER_API_USED if not has_name(apis()[version], name)]
    assert not missing, f"TensorRT {version} has no {missing} (used by the engine runner)"


# --- negative checks: the paths differ exactly where the releases do ----------------------------

REMOVED_IN_11 = {
    "BuilderFlag.FP16",
    "BuilderFlag.INT8",
    "BuilderFlag.OBEY_PRECISION_CONSTRAINTS",
    "ILayer.precision",
    "ILayer.set_output_type",
    "IInt8EntropyCalibrator2",
    "IInt8EntropyCalibrator2.get_batch",
    "IInt8EntropyCalibrator2.get_batch_size",
    "IInt8EntropyCalibrator2.read_calibration_cache",
    "IInt8EntropyCalibrator2.write_calibration_cache",
    "IBuilderConfig.int8_calibrator",
    "IBuilderConfig.set_calibration_profile",
    "NetworkDefinitionCreationFlag.EXPLICIT_BATCH",
}


def test_the_11_path_uses_no_precision_flag_pin_or_calibrator():
    used = set(API_USED["strong-11"])
    assert not used & REMOVED_IN_11
    assert not [n for n in used if n.startswith("BuilderFlag.") and n != "BuilderFlag.GPU_FALLBACK"]
    assert not [n for n in used if "calibrat" in n.lower() or n.startswith("ILayer.precision")]


def test_the_names_the_weak_path_needs_are_absent_from_11_4():
    """Running the weak path on 11.4 would fail on exactly these names, so the strong path must avoid them."""
    api11 = apis()["11.4.0.106"]
    assert not has_name(api11, "BuilderFlag.FP16")
    absent = {n for n in set(API_USED["weak-10"]) | set(API_USED["weak-8.6"]) if not has_name(api11, n)}
    assert absent == REMOVED_IN_11
    # ...and every one of them is present where the weak path runs.
    for version in ("8.6.1", "10.3.0", "10.16.1.11"):
        assert all(has_name(apis()[version], n) for n in REMOVED_IN_11 if n in API_USED[paths_for(version)[0]])


def test_the_8_6_path_has_no_progress_monitor_and_8_6_has_none():
    api86 = apis()["8.6.1"]
    assert not has_name(api86, "IProgressMonitor") and not has_name(api86, "IBuilderConfig.progress_monitor")
    assert not [n for n in API_USED["weak-8.6"] if "ProgressMonitor" in n or n.endswith(".progress_monitor")]
    for path in ("weak-10", "strong-10", "strong-11"):
        assert "IProgressMonitor" in API_USED[path] and "IBuilderConfig.progress_monitor" in API_USED[path]


def test_explicit_batch_only_on_8_6_and_strongly_typed_only_on_strong_10():
    for path, names in API_USED.items():
        assert ("NetworkDefinitionCreationFlag.EXPLICIT_BATCH" in names) == (path == "weak-8.6"), path
        assert ("NetworkDefinitionCreationFlag.STRONGLY_TYPED" in names) == (path == "strong-10"), path
    assert not has_name(apis()["8.6.1"], "NetworkDefinitionCreationFlag.STRONGLY_TYPED")
    assert not has_name(apis()["11.4.0.106"], "NetworkDefinitionCreationFlag.EXPLICIT_BATCH")


def test_nothing_removed_before_a_release_is_used_on_it():
    """Names other toolchains tripped over (NVIDIA/TensorRT#3816): none of them is used anywhere."""
    legacy = {"IBuilderConfig.max_workspace_size", "Builder.build_engine", "Builder.max_batch_size",
              "IExecutionContext.execute_async_v2", "IExecutionContext.set_binding_shape",
              "ICudaEngine.get_binding_shape", "ICudaEngine.num_bindings", "BuilderFlag.STRICT_TYPES"}
    used = set(RUNNER_API_USED).union(*API_USED.values())
    assert not used & legacy


# --- the plan's decisions stay inside each path's declared names --------------------------------


def _spec(version: str, dialect: str, precision: str, **kw) -> BuildSpec:
    fields = dict(
        model="rf_b0", resolution=64, target="jetson-orin", tensorrt_version=version, dialect=dialect,
        onnx="rf_b0.onnx", input_name="images", output_name="logits", batch=BatchProfile(1, 8, 32),
        precision=precision, fp32_layers=("/a/ReduceSum",) if dialect == "weak" else (),
    )
    fields.update(kw)
    return BuildSpec(**fields)


PLAN_CASES = [
    ("8.6", "weak", "fp32", {}),
    ("8.6", "weak", "fp16", {}),
    ("8.6", "weak", "fp16", {"dla_core": 0, "batch": BatchProfile(8, 8, 8)}),
    ("8.6", "weak", "int8", {"calibration_cache": "calib.cache"}),
    ("10.3", "weak", "fp16", {}),
    ("10.3", "weak", "int8", {}),
    ("10.16", "strong", "fp16", {}),
    ("11.4", "strong", "fp16", {"dla_core": 1, "batch": BatchProfile(4, 4, 4)}),
]


@pytest.mark.parametrize("version,dialect,precision,kw", PLAN_CASES)
def test_the_flags_a_plan_sets_are_declared_by_its_path(version, dialect, precision, kw):
    plan = plan_build(_spec(version, dialect, precision, **kw))
    used = set(API_USED[plan.path])
    assert {f"BuilderFlag.{f}" for f in plan.builder_flags} <= used
    assert {f"NetworkDefinitionCreationFlag.{f}" for f in plan.network_flags} <= used
    assert plan.steps == tuple(step.__name__ for step in PATH_STEPS[plan.path])


# --- completeness: each declaration covers what its function's source touches ------------------


@lru_cache(maxsize=None)
def trt_member_names() -> frozenset[str]:
    names: set[str] = set()
    for api in apis().values():
        for members in list(api["classes"].values()) + list(api["enums"].values()):
            names.update(members)
    return frozenset(names)


#: Fields of the build state / engine runner that hold TensorRT objects.
TRT_FIELDS = {"logger", "builder", "network", "parser", "config", "profile", "_logger", "_runtime", "_engine", "_context"}
OWN_ROOTS = {"state", "self"}


def _chain(node: ast.Attribute) -> tuple[ast.AST, list[str]]:
    attrs = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    return node, attrs[::-1]


def _trt_chain(root: ast.AST, attrs: list[str]) -> list[str] | None:
    """The TensorRT-module-relative part of ``trt.X.Y`` / ``state.trt.X`` / ``self._trt.X``, else None."""
    if isinstance(root, ast.Name) and root.id == "trt":
        return attrs
    if isinstance(root, ast.Name) and root.id in OWN_ROOTS and attrs and attrs[0] in ("trt", "_trt"):
        return attrs[1:]
    return None


def touched(fn, module) -> dict[str, set[str]]:
    """What ``fn``'s source touches: trt-module names, members of TensorRT objects, overridden methods, declared calls."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    found: dict[str, set[str]] = {"qualified": set(), "members": set(), "overrides": set(), "calls": set(), "trt_fields": set()}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                if isinstance(base, ast.Attribute):
                    q = _trt_chain(*_chain(base))
                    if q:
                        found["overrides"].update(
                            f"{'.'.join(q)}.{d.name}" for d in node.body if isinstance(d, ast.FunctionDef) and not d.name.startswith("__")
                        )
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            target = getattr(module, node.func.id, None)
            if hasattr(target, "__trt_api__"):
                found["calls"].add(node.func.id)
        elif isinstance(node, ast.Attribute) and id(node) not in inner:
            root, attrs = _chain(node)
            q = _trt_chain(root, attrs)
            if q is not None:
                if q and q[-1] == "__init__":
                    q = q[:-1]
                if q:
                    found["qualified"].add(".".join(q))
            elif isinstance(root, ast.Name) and root.id in OWN_ROOTS:
                if attrs[0] in TRT_FIELDS and len(attrs) > 1:
                    found["members"].update(attrs[1:])
                    found["trt_fields"].add(attrs[0])
            elif isinstance(root, ast.Name) and hasattr(module, root.id):
                pass  # a module-level import or helper (np, time, Path ...)
            else:
                found["members"].update(attrs)
    found["members"] &= trt_member_names()
    return found


def _declared_functions():
    seen = {}
    for steps in PATH_STEPS.values():
        for step in steps:
            seen[step.__name__] = (step, build_steps)
    for name, fn in vars(EngineRunner).items():
        if callable(fn):
            seen[f"EngineRunner.{name}"] = (fn, runner)
    seen["tensorrt_logger"] = (tensorrt_logger, tensorrt_api)
    return seen


DECLARED = {name: pair for name, pair in _declared_functions().items() if hasattr(pair[0], "__trt_api__")}


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_a_declaration_covers_everything_its_function_touches(name):
    fn, module = DECLARED[name]
    declared = set(fn.__trt_api__)
    found = touched(fn, module)
    undeclared = [q for q in found["qualified"] if q not in declared and not any(d.startswith(q + ".") for d in declared)]
    undeclared += [f"*.{m}" for m in found["members"] if not any(d.endswith("." + m) for d in declared)]
    undeclared += [o for o in found["overrides"] if o not in declared]
    assert not undeclared, f"{name} touches TensorRT names it does not declare: {sorted(undeclared)}"
    assert found["calls"] <= {c.__name__ for c in fn.__trt_calls__}, f"{name} calls declared functions it does not list"


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_a_declaration_lists_nothing_its_function_does_not_touch(name):
    fn, module = DECLARED[name]
    found = touched(fn, module)
    source_names = found["qualified"] | found["overrides"]
    stale = [
        d
        for d in fn.__trt_api__
        if d not in source_names
        and not any(q.startswith(d + ".") or q == d for q in source_names)
        and d.rsplit(".", 1)[-1] not in found["members"]
    ]
    assert not stale, f"{name} declares names its source does not touch: {stale}"


def _module_functions(module):
    """Every function and method defined in ``module`` (nested classes' methods included)."""
    tree = ast.parse(Path(module.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            yield node


#: The builder's and the runtime's modules: wherever TensorRT could be touched.
ENGINE_MODULES = [build_decisions, build_plan, build_steps, build, sidecar, plan_file, tensorrt_api, cuda, runner]


@pytest.mark.parametrize("module", ENGINE_MODULES, ids=[m.__name__.rsplit(".", 1)[-1] for m in ENGINE_MODULES])
def test_functions_without_a_declaration_touch_no_tensorrt(module):
    declared_names = {fn.__name__ for fn, m in DECLARED.values() if m is module}
    # Methods of classes defined inside declared functions belong to those functions' declarations.
    nested = set()
    for fn, m in DECLARED.values():
        if m is module:
            for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(fn)))):
                if isinstance(node, ast.FunctionDef) and node.name != fn.__name__:
                    nested.add(node.name)
    offenders = []
    for node in _module_functions(module):
        if node.name in declared_names or node.name in nested:
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute):
                root, attrs = _chain(sub)
                if _trt_chain(root, attrs):
                    offenders.append(f"{node.name}: {'.'.join(attrs)}")
                elif isinstance(root, ast.Name) and root.id in OWN_ROOTS and attrs[0] in TRT_FIELDS and len(attrs) > 1:
                    if attrs[1] in trt_member_names():
                        offenders.append(f"{node.name}: {root.id}.{'.'.join(attrs)}")
    assert not offenders, f"functions touching TensorRT without declaring it: {offenders}"


def test_the_runtime_table_is_the_union_of_its_methods():
    methods = [fn for fn in vars(EngineRunner).values() if hasattr(fn, "__trt_api__")]
    assert len(methods) >= 5
    expected = set().union(*(set(fn.__trt_api__) for fn in methods)) | set(tensorrt_logger.__trt_api__)
    assert set(RUNNER_API_USED) == expected


# --- cuda-python ----------------------------------------------------------------------------


def test_the_runtime_calls_only_the_cudart_names_it_lists():
    trees = [ast.parse(Path(module.__file__).read_text()) for module in ENGINE_MODULES]
    def is_cudart(node: ast.AST) -> bool:  # `cudart.X` or `_cudart().X`
        if isinstance(node, ast.Name):
            return node.id == "cudart"
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_cudart"

    used = {n.attr for tree in trees for n in ast.walk(tree) if isinstance(n, ast.Attribute) and is_cudart(n.value)}
    assert used == set(CUDART_API_USED)


def test_the_cudart_names_exist_in_the_installed_cuda_python():
    cudart = pytest.importorskip(
        "cuda.bindings.runtime", reason="cuda-python is an optional extra (rftrt[device]) and is not installed here"
    )
    assert [name for name in CUDART_API_USED if not hasattr(cudart, name)] == []
    assert hasattr(cudart.cudaMemcpyKind, "cudaMemcpyHostToDevice") and hasattr(cudart.cudaMemcpyKind, "cudaMemcpyDeviceToHost")
    assert hasattr(cudart.cudaStreamCaptureMode, "cudaStreamCaptureModeGlobal")
