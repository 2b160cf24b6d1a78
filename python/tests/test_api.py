"""The Python API against the committed fixtures, run on the installed wheel (.ci/run).

Run from a venv the wheel is installed in: `python -m pytest python/tests`. With
EFFNET_BINARY set, the binary it names is used instead of the venv's (development).
"""

from __future__ import annotations

import ast
import json
import os
import re
import struct
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

import pytest

import effnet

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
TORCH = FIXTURES / "torch"
TINY = TORCH / "torchvision-tiny.pth"  # width 0.1, depth 0.5, 10 classes, 55,458 params
TINY_PARAMS = 55458
B0_PARAMS = 5288548  # docs/cost.md: torchvision and Keras agree


def references(*folders: str):
    """(fixture file, its generator's record) for every model fixture with a record."""
    cases = []
    for folder in folders:
        for record in sorted((FIXTURES / folder).glob("*.json")):
            data = json.loads(record.read_text())
            if "file" in data and "params" in data:
                cases.append(pytest.param(FIXTURES / folder / data["file"], data, id=record.stem))
    return cases


# --- the package and its binary -------------------------------------------------------------


def test_the_binary_is_the_one_installed_beside_the_interpreter():
    if os.environ.get("EFFNET_BINARY"):
        pytest.skip("EFFNET_BINARY names the binary")
    name = "effnet.exe" if os.name == "nt" else "effnet"
    assert effnet.binary() == os.path.join(sysconfig.get_path("scripts"), name)
    # The installed package is tested, not the source folder.
    assert Path(effnet.__file__).parent != ROOT / "python" / "effnet"


def test_version_is_the_binarys():
    out = subprocess.run([effnet.binary(), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["effnet", effnet.__version__]


def test_python_dash_m_runs_the_binary():
    out = subprocess.run(
        [sys.executable, "-m", "effnet", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("effnet ")


def test_import_is_light():
    # The binary is found and subprocess/json imported on the first call, not at import.
    code = "import sys, effnet; print(sorted(m for m in ('subprocess', 'json', 'sysconfig') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "subprocess" not in out.stdout and "json" not in out.stdout


# --- spec -----------------------------------------------------------------------------------


def test_spec_b0():
    doc = effnet.spec("b0")
    assert doc["schema"] == "effnet.spec/1"
    assert doc["variant"] == "b0" and doc["resolution"] == 224
    assert [s["output_channels"] for s in doc["stages"]] == [32, 16, 24, 40, 80, 112, 192, 320, 1280]
    assert doc["totals"]["blocks"] == 16 == len(doc["blocks"])


def test_spec_scaling_and_naming_options():
    doc = effnet.spec("b0", width=1.1, depth=1.2, resolution=260, naming="torchvision")
    assert (doc["width"], doc["depth"], doc["resolution"]) == (1.1, 1.2, 260)
    assert doc["semantics"]["padding"] == "symmetric"
    assert doc["semantics"]["bn_eps"] == pytest.approx(1e-5)
    assert effnet.spec("b3")["resolution"] == 300


def test_spec_unknown_variant_is_an_effnet_error():
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.spec("b9")
    assert caught.value.exit_code == 2
    assert "b9" in caught.value.message
    assert caught.value.argv[1] == "spec"


# --- inspect --------------------------------------------------------------------------------


@pytest.mark.parametrize("path, record", references("torch", "keras", "tf"))
def test_inspect_every_fixture(path, record):
    naming = record["naming"] if record["naming"] == "timm-tf" else None
    doc = effnet.inspect(path, naming=naming, key=record.get("key"), quiet=True)
    assert doc["schema"] == "effnet.inspect/1"
    assert doc["trainable_params"] == record["params"]
    assert doc["num_classes"] == record["num_classes"]
    assert doc["naming"] == record["naming"]
    if record.get("key"):
        assert doc["key"] == record["key"]


def test_inspect_accepts_pathlike_and_key():
    doc = effnet.inspect(TORCH / "torchvision-tiny-train.pth", key="model_ema")
    assert doc["key"] == "model_ema"
    assert "model" in doc["other_keys"]


def test_inspect_warnings_are_in_the_document():
    doc = effnet.inspect(TORCH / "timm-tf-tiny.pth")  # timm and timm-tf names are the same
    assert doc["naming"] == "timm"
    assert any("timm-tf" in w for w in doc["warnings"])


def test_inspect_tensors_lists_statistics():
    doc = effnet.inspect(TORCH / "torchvision-tiny.safetensors", tensors=True)
    listed = doc["tensor_list"]
    assert len(listed) == doc["tensors_in_file"]
    first = listed[0]
    assert set(first) == {"name", "shape", "dtype", "bytes", "min", "max", "mean", "std", "nan", "inf"}
    assert "tensor_list" not in effnet.inspect(TORCH / "torchvision-tiny.safetensors")


def test_inspect_a_file_that_is_not_an_efficientnet(tmp_path):
    import json
    import struct

    header = json.dumps(
        {"conv1.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "resnet.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 3.0))
    doc = effnet.inspect(path, tensors=True)
    assert doc["variant"] is None and doc["family"] is None
    assert "conv1.weight" in doc["not_efficientnet"]
    assert doc["tensor_list"][0]["mean"] == 2.0
    with pytest.raises(effnet.EffnetError) as err:
        effnet.audit(path)
    assert err.value.exit_code == 2


def test_stderr_warnings_are_python_warnings_and_quiet_silences_them():
    ambiguous = TORCH / "timm-tf-tiny.pth"
    with pytest.warns(effnet.EffnetWarning, match="timm-tf"):
        doc = effnet.audit(ambiguous)
    assert doc["warnings"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        effnet.audit(ambiguous, quiet=True)


def test_inspect_dot_writes_the_graph(tmp_path):
    dot = tmp_path / "graph.dot"
    effnet.inspect(TINY, dot=dot)
    assert dot.read_text().startswith("digraph")


def test_inspect_missing_file_is_an_effnet_error():
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.inspect(TORCH / "no-such-file.pth")
    assert caught.value.exit_code == 2
    assert "no-such-file.pth" in caught.value.message
    assert not caught.value.message.startswith("error:")


def test_errors_pickle():
    import pickle

    with pytest.raises(effnet.EffnetError) as caught:
        effnet.spec("b9")
    again = pickle.loads(pickle.dumps(caught.value))
    assert (again.message, again.exit_code, again.argv) == (
        caught.value.message,
        2,
        caught.value.argv,
    )
    option = pickle.loads(pickle.dumps(effnet.OptionError("x")))
    assert isinstance(option, TypeError) and option.exit_code == 2


def test_inspect_hostile_file_is_refused():
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.inspect(FIXTURES / "hostile" / "os-system.pth")
    assert caught.value.exit_code == 2


# --- audit ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "record", sorted((FIXTURES / "audit").glob("*.json")), ids=lambda p: p.stem
)
def test_audit_every_deviation_fixture(record):
    expected = json.loads(record.read_text())
    doc = effnet.audit(FIXTURES / "audit" / expected["file"], quiet=True)
    assert doc["schema"] == "effnet.audit/1"
    errors = {(f["stage"], f["block"], f["field"]) for f in doc["findings"] if f["severity"] == "error"}
    wanted = {tuple(f) for f in expected["findings"]}
    # A deviation is a report with conforms False (the binary's exit 1), not an exception.
    assert doc["conforms"] is (not wanted)
    assert wanted <= errors


def test_audit_options():
    doc = effnet.audit(FIXTURES / "audit" / "standard.pth", spec="b0", quiet=True)
    assert doc["conforms"] is False  # a tiny model is not B0
    assert doc["spec"] == "b0"
    doc = effnet.audit(FIXTURES / "audit" / "standard.pth", width=0.1, depth=0.5, quiet=True)
    assert doc["conforms"] is True


def test_audit_usage_error_is_raised():
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.audit(TINY, width=1.3)  # --width needs --depth
    assert caught.value.exit_code == 2
    assert "--depth" in caught.value.message


# --- cost -----------------------------------------------------------------------------------


def test_cost_variant():
    doc = effnet.cost(variant="b0")
    assert doc["schema"] == "effnet.cost/1"
    assert doc["model"]["source"] == "spec"
    assert doc["total"]["params"] == B0_PARAMS
    assert 385e6 < doc["total"]["macs"] < 390e6
    assert len(doc["stages"]) == 9


def test_cost_file_and_options():
    doc = effnet.cost(TINY, resolution=64, batch=2, dtype="f16", by="layer")
    assert doc["total"]["params"] == TINY_PARAMS
    assert doc["batch"] == 2 and doc["dtype"] == "f16"
    assert doc["layers"] and doc["blocks"]
    f32 = effnet.cost(TINY, resolution=64, batch=2)
    assert f32["total"]["activation_bytes"] == 2 * doc["total"]["activation_bytes"]


def test_cost_by_operator_and_non_square_resolutions():
    doc = effnet.cost(variant="b0", by="operator")
    ops = {o["operator"]: o for o in doc["operators"]}
    assert ops["dense"]["macs"] == 1_280_000
    assert sum(o["macs"] for o in doc["operators"]) == doc["total"]["macs"]
    assert doc["memory"]["weights_bytes"] > 0
    # fvcore's conv + linear count of torchvision's efficientnet_b0 at 224×320.
    for size in ("224x320", (224, 320)):
        wide = effnet.cost(variant="b0", resolution=size)
        assert wide["total"]["macs"] == 550_346_560
        assert wide["model"]["input_size"] == [224, 320]
    assert effnet.spec("b0", resolution=(224, 320))["input_size"] == [224, 320]
    with pytest.raises(effnet.OptionError, match="resolution"):
        effnet.cost(variant="b0", resolution=(224, 320, 3))


def test_cost_gate_over_budget_is_a_report_not_an_exception(tmp_path):
    baseline = tmp_path / "b0.json"
    baseline.write_text(json.dumps(effnet.cost(variant="b0", resolution=224)))
    same = effnet.cost(variant="b0", baseline=baseline, max_increase=2)
    assert same["baseline"]["within_budget"] is True
    bigger = effnet.cost(variant="b1", resolution=224, baseline=baseline, max_increase="2%")
    assert bigger["baseline"]["within_budget"] is False
    assert "params" in bigger["baseline"]["exceeded"]


def test_cost_unusable_baseline_is_raised(tmp_path):
    baseline = tmp_path / "b0.json"
    baseline.write_text(json.dumps(effnet.cost(variant="b0", batch=4)))
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.cost(variant="b0", baseline=baseline)
    assert caught.value.exit_code == 2
    doc = effnet.cost(variant="b0", baseline=baseline, allow_different_settings=True)
    assert doc["baseline"]["within_budget"] is True


def test_cost_svg(tmp_path):
    svg = tmp_path / "stages.svg"
    effnet.cost(variant="b0", svg=svg)
    assert "<svg" in svg.read_text()
    with pytest.raises(effnet.EffnetError):
        effnet.cost(variant="b0", svg=svg)  # exists
    effnet.cost(variant="b0", svg=svg, force=True)


def test_cost_needs_one_of_path_and_variant():
    with pytest.raises(effnet.OptionError):
        effnet.cost()
    with pytest.raises(effnet.OptionError):
        effnet.cost(TINY, variant="b0")


def test_cost_weights_only_file_needs_a_resolution():
    with pytest.raises(effnet.EffnetError, match="resolution"):
        effnet.cost(TORCH / "torchvision-tiny-legacy.pth")


# --- convert --------------------------------------------------------------------------------


def test_convert_to_f16_safetensors(tmp_path):
    out = tmp_path / "tiny-f16.safetensors"
    result = effnet.convert(TINY, out, dtype="f16", keep_bn_f32=True, verify=True)
    assert result["output"] == str(out)
    assert result["report"][0].startswith(f"wrote {out}")
    assert any(line.startswith("verified") for line in result["report"])
    assert result["warnings"] == []
    doc = effnet.inspect(out)
    assert doc["dtype"] == "mixed" and doc["trainable_params"] == TINY_PARAMS


def test_convert_names_and_source_naming(tmp_path):
    timm = tmp_path / "timm.safetensors"
    effnet.convert(TINY, timm, naming="timm")
    assert effnet.inspect(timm)["naming"] == "timm"
    tf = tmp_path / "timm-tf.safetensors"
    effnet.convert(TORCH / "timm-tf-tiny.pth", tf, source_naming="timm-tf")
    assert effnet.inspect(tf)["naming"] == "timm-tf"


def test_convert_refusal_is_raised_and_writes_nothing(tmp_path):
    out = tmp_path / "tv.safetensors"
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.convert(TORCH / "timm-tf-tiny.pth", out, source_naming="timm-tf", naming="torchvision")
    assert caught.value.exit_code == 2
    assert "--allow-padding-change" in caught.value.message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_convert_allowed_change_warns(tmp_path):
    out = tmp_path / "tv.safetensors"
    with pytest.warns(effnet.EffnetWarning, match="pads"):
        result = effnet.convert(
            TORCH / "timm-tf-tiny.pth",
            out,
            source_naming="timm-tf",
            naming="torchvision",
            allow_padding_change=True,
        )
    assert result["warnings"] and "allow-padding-change" in result["warnings"][0]


def test_convert_keras(tmp_path):
    out = tmp_path / "tiny.keras"
    result = effnet.convert(
        TORCH / "timm-tf-tiny.pth",
        out,
        source_naming="timm-tf",
        resolution=64,
        input_mean=(0.485, 0.456, 0.406),
        input_std="0.229,0.224,0.225",
        check=True,
    )
    assert result["report"][0].startswith(f"wrote {out}: Keras 3 .keras")
    assert any("as stated" in line for line in result["report"])
    doc = effnet.inspect(out)
    assert doc["container"] == "keras-v3" and doc["trainable_params"] == TINY_PARAMS
    weights = tmp_path / "tiny.weights.h5"
    effnet.convert(out, weights, check=True)
    assert effnet.inspect(weights)["trainable_params"] == TINY_PARAMS


def test_convert_onnx(tmp_path):
    out = tmp_path / "tiny.onnx"
    result = effnet.convert(TINY, out, opset=17, resolution=64, fold_bn=True)
    assert "ONNX opset 17" in result["report"][0]
    assert out.stat().st_size > 100_000


def test_convert_existing_output_needs_force(tmp_path):
    out = tmp_path / "x.safetensors"
    effnet.convert(TINY, out)
    with pytest.raises(effnet.EffnetError):
        effnet.convert(TINY, out)
    effnet.convert(TINY, out, force=True)


# --- run and compare ------------------------------------------------------------------------


def safetensors_f32(path: Path, name: str):
    """(shape, raw little-endian f32 bytes) of one tensor of a safetensors file."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    entry = json.loads(data[8 : 8 + size])[name]
    start, end = entry["data_offsets"]
    return entry["shape"], data[8 + size + start : 8 + size + end]


def write_npy(path: Path, shape, raw: bytes):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join(
        f"{n}, " for n in shape
    )
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + raw)


def test_run_on_the_reference_input(tmp_path):
    shape, raw = safetensors_f32(TORCH / "torchvision-tiny-io.safetensors", "input")
    _, expected_raw = safetensors_f32(TORCH / "torchvision-tiny-io.safetensors", "output")
    expected = struct.unpack(f"<{len(expected_raw) // 4}f", expected_raw)
    x = tmp_path / "x.npy"
    write_npy(x, shape, raw)
    y = tmp_path / "y.npy"
    doc = effnet.run(TINY, input=x, output=y)
    assert doc["schema"] == "effnet.run/1"
    assert doc["input"]["shape"] == shape
    top = doc["top"][0][0]
    assert top["class"] == max(range(len(expected)), key=expected.__getitem__)
    assert top["score"] == pytest.approx(max(expected), rel=1e-4, abs=1e-4)
    assert y.read_bytes().startswith(b"\x93NUMPY")


def test_run_missing_input_is_raised():
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.run(TINY, input=TORCH / "missing.npy")
    assert caught.value.exit_code == 2


def test_compare_a_conversion_keeps_the_numbers(tmp_path):
    out = tmp_path / "timm-tf.safetensors"
    effnet.convert(TORCH / "timm-tf-tiny.pth", out, source_naming="timm-tf")
    doc = effnet.compare(TORCH / "timm-tf-tiny.pth", out, naming_a="timm-tf", seed=3, resolution=64)
    assert doc["schema"] == "effnet.compare/1"
    assert doc["equal"] is True and doc["first_differing_stage"] is None


def test_compare_different_outputs_is_a_report_not_an_exception(tmp_path):
    out = tmp_path / "tv.safetensors"
    effnet.convert(
        TORCH / "timm-tf-tiny.pth",
        out,
        source_naming="timm-tf",
        naming="torchvision",
        allow_padding_change=True,
        quiet=True,
    )
    doc = effnet.compare(TORCH / "timm-tf-tiny.pth", out, naming_a="timm-tf", quiet=True)
    assert doc["equal"] is False
    assert doc["first_differing_stage"] == 1
    strict = effnet.compare(TINY, TINY, tolerance=0)
    assert strict["equal"] is True


# --- options --------------------------------------------------------------------------------


def test_report_writes_a_page_and_returns_its_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = effnet.report(TINY, resolution=224)
    assert done["output"] == "torchvision-tiny.report.html"
    assert done["passed"] is True and done["html"] is None
    page = (tmp_path / done["output"]).read_text()
    assert page.startswith("<!DOCTYPE html>")
    for heading in ("<h2>Model</h2>", "<h2>Audit</h2>", "<h2>Cost per stage</h2>", "<svg"):
        assert heading in page
    with pytest.raises(effnet.EffnetError) as err:
        effnet.report(TINY, resolution=224)  # exists: --force needed
    assert err.value.exit_code == 2 and "--force" in err.value.message
    assert effnet.report(TINY, resolution=224, force=True)["passed"] is True


def test_report_verdict_and_stdout(tmp_path):
    out = tmp_path / "no-se.html"
    done = effnet.report(
        FIXTURES / "audit" / "no-se.pth", output=out, resolution=224, naming="timm"
    )
    assert done["passed"] is False and done["output"] == str(out)
    assert "deviates from" in out.read_text()
    page = effnet.report(TINY, output="-", resolution=224)
    assert page["html"].startswith("<!DOCTYPE html>") and "conforms to" in page["html"]


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(effnet.OptionError) as caught:
        effnet.cost(variant="b0", dtyp="f16")
    err = caught.value
    assert isinstance(err, TypeError) and isinstance(err, effnet.EffnetError)
    assert err.exit_code == 2
    assert "'dtyp'" in err.message and "did you mean 'dtype'" in err.message
    assert "max_increase" in err.message and "allow_different_settings" in err.message


def test_format_is_not_an_option():
    with pytest.raises(effnet.OptionError, match="json"):
        effnet.spec("b0", format="table")


def test_flags_take_booleans_and_values_take_values():
    with pytest.raises(effnet.OptionError, match="flag"):
        effnet.convert(TINY, "x.safetensors", force="yes")
    with pytest.raises(effnet.OptionError):
        effnet.spec("b0", resolution=True)
    with pytest.raises(effnet.OptionError):
        effnet.spec("b0", resolution=[224])
    # False and None leave an option out.
    assert effnet.spec("b0", resolution=None, quiet=False)["resolution"] == 224


def test_invalid_values_are_the_binarys_error():
    with pytest.raises(effnet.EffnetError) as caught:
        effnet.cost(variant="b0", dtype="f8")
    assert caught.value.exit_code == 2
    assert "f8" in caught.value.message and "bf16" in caught.value.message
    assert "For more information" not in caught.value.message


def test_standard_output_is_refused_as_a_side_file():
    with pytest.raises(effnet.OptionError):
        effnet.cost(variant="b0", svg="-")
    with pytest.raises(effnet.OptionError):
        effnet.convert(TINY, "-")


def test_a_path_that_starts_with_a_dash_stays_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-model.pth").write_bytes(TINY.read_bytes())
    assert effnet.inspect("-model.pth")["trainable_params"] == TINY_PARAMS


def test_verbose_copies_stderr(capfd):
    effnet.audit(TINY, verbose=True)
    assert "container" in capfd.readouterr().err


# --- one source of truth: the option tables, the stub and `effnet <command> --help` ------------

COMMANDS = ["spec", "inspect", "audit", "cost", "convert", "run", "compare", "report"]
# Flags the Python API sets itself or leaves out on purpose.
NOT_OPTIONS = {"help", "version", "format", "quiet", "verbose"}
# `--recursive` reads many models per run; the Python API reads one per call.
POSITIONAL_OR_OWN = {
    "cost": {"variant", "recursive"},
    "convert": {"output"},
    "inspect": {"recursive"},
    "audit": {"recursive"},
}


def help_flags(command: str) -> set[str]:
    text = subprocess.run(
        [effnet.binary(), command, "--help"], capture_output=True, text=True, check=True
    ).stdout
    flags = set(re.findall(r"^\s+(?:-\w, )?--([a-z0-9-]+)", text, re.M))
    return {f.replace("-", "_") for f in flags} - NOT_OPTIONS


def stub_keywords() -> dict[str, set[str]]:
    stub = Path(effnet.__file__).with_suffix(".pyi")
    tree = ast.parse(stub.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in COMMANDS:
            out[node.name] = {a.arg for a in node.args.kwonlyargs}
    return out


def test_commands_of_the_binary_are_all_wrapped():
    text = subprocess.run([effnet.binary(), "--help"], capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^  ([a-z]+)\s", text.split("Commands:")[1].split("Options:")[0], re.M))
    assert listed - {"help", "completions", "man"} == set(COMMANDS), (
        "a command of the binary has no function in python/effnet (or the reverse)"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_options_match_the_binary_and_the_stub(command):
    table = set(effnet._OPTIONS[command])
    flags = help_flags(command)
    wrapped = table | POSITIONAL_OR_OWN.get(command, set())
    assert wrapped == flags, (
        f"`effnet {command}` has flags {sorted(flags - wrapped)} the Python API does not know, "
        f"and the API has {sorted(wrapped - flags)} the binary does not: update _OPTIONS in "
        "python/effnet/__init__.py, the stub __init__.pyi and the docstring"
    )
    stub = stub_keywords()[command]
    want = table | {"quiet", "verbose"} | ({"variant"} if command == "cost" else set())
    assert stub == want, f"__init__.pyi {command}(): missing {sorted(want - stub)}, extra {sorted(stub - want)}"
