# Signatures of the effnet package for type checkers and editors. The implementation
# (__init__.py) takes **options and checks them against the binary's flags; this stub names
# every option. python/tests/test_api.py checks that the two and `effnet <command> --help`
# agree.
import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Union

__version__: str

_Path = Union[str, os.PathLike[str]]
_Number = Union[int, float, str]
_Resolution = Union[int, str, "tuple[int, int]"]
"""An input size: ``224``, ``"224x320"`` (height × width) or ``(224, 320)``."""
_Verbose = Union[bool, int]

SpecDocument = Dict[str, Any]
"""`effnet.spec/1` (docs/json.md)."""
InspectDocument = Dict[str, Any]
"""`effnet.inspect/1` (docs/json.md)."""
AuditDocument = Dict[str, Any]
"""`effnet.audit/1` (docs/json.md); `conforms` False when the model deviates."""
CostDocument = Dict[str, Any]
"""`effnet.cost/1` (docs/json.md); `baseline.within_budget` False when over budget."""
RunDocument = Dict[str, Any]
"""`effnet.run/1` (docs/json.md)."""
CompareDocument = Dict[str, Any]
"""`effnet.compare/1` (docs/json.md); `equal` False when the outputs differ."""
ConvertResult = Dict[str, Any]
"""`{"output": str, "report": list[str], "warnings": list[str]}`."""
ReportResult = Dict[str, Any]
"""`{"output": str, "passed": bool, "html": str | None, "warnings": list[str]}`."""

_Dtype = Literal["f32", "f16", "bf16"]
_Layout = Literal["nchw", "nhwc"]

class EffnetError(Exception):
    """The binary failed (exit 2), or could not be run."""

    message: str
    exit_code: Optional[int]
    stderr: str
    argv: Optional[List[str]]
    def __init__(
        self,
        message: str,
        exit_code: Optional[int],
        stderr: str = ...,
        argv: Optional[List[str]] = ...,
    ) -> None: ...

class OptionError(EffnetError, TypeError):
    """An unknown option or a value of the wrong type; raised before the binary runs."""

    def __init__(self, message: str) -> None: ...

class EffnetWarning(UserWarning):
    """A warning the binary printed on stderr."""

def binary() -> str:
    """The path of the `effnet` binary the functions run."""

def spec(
    variant: str,
    *,
    width: Optional[_Number] = None,
    depth: Optional[_Number] = None,
    resolution: Optional[_Resolution] = None,
    naming: Optional[str] = None,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> SpecDocument:
    """The architecture of a variant, scaled (`effnet spec`)."""

def inspect(
    path: _Path,
    *,
    naming: Optional[str] = None,
    key: Optional[str] = None,
    verify_checksums: bool = False,
    tensors: bool = False,
    dot: Optional[_Path] = None,
    force: bool = False,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> InspectDocument:
    """What a model file is (`effnet inspect`)."""

def audit(
    path: _Path,
    *,
    spec: Optional[str] = None,
    width: Optional[_Number] = None,
    depth: Optional[_Number] = None,
    naming: Optional[str] = None,
    key: Optional[str] = None,
    verify_checksums: bool = False,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> AuditDocument:
    """Is this model the spec (`effnet audit`); a deviation returns `conforms` False."""

def cost(
    path: Optional[_Path] = None,
    *,
    variant: Optional[str] = None,
    width: Optional[_Number] = None,
    depth: Optional[_Number] = None,
    resolution: Optional[_Resolution] = None,
    naming: Optional[str] = None,
    key: Optional[str] = None,
    verify_checksums: bool = False,
    batch: Optional[_Number] = None,
    dtype: Optional[_Dtype] = None,
    by: Optional[Literal["stage", "block", "layer", "operator"]] = None,
    baseline: Optional[_Path] = None,
    max_increase: Optional[_Number] = None,
    allow_different_settings: bool = False,
    svg: Optional[_Path] = None,
    force: bool = False,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> CostDocument:
    """Params, MACs, FLOPs and activation memory (`effnet cost`); over budget returns
    `baseline.within_budget` False."""

def convert(
    src: _Path,
    dst: _Path,
    *,
    to: Optional[Literal["safetensors", "onnx", "keras", "weights-h5", "h5"]] = None,
    dtype: Optional[_Dtype] = None,
    naming: Optional[str] = None,
    source_naming: Optional[str] = None,
    key: Optional[str] = None,
    keep_bn_f32: bool = False,
    clamp: bool = False,
    allow_padding_change: bool = False,
    allow_shortcut_change: bool = False,
    activation: Optional[Literal["swish", "relu", "relu6"]] = None,
    assume_architecture: bool = False,
    force: bool = False,
    verify: bool = False,
    check: bool = False,
    tolerance: Optional[_Number] = None,
    seed: Optional[_Number] = None,
    opset: Optional[_Number] = None,
    resolution: Optional[_Resolution] = None,
    dynamic_size: bool = False,
    logits: bool = False,
    no_preprocessing: bool = False,
    fold_bn: bool = False,
    input_layout: Optional[_Layout] = None,
    input_mean: Optional[Union[str, Sequence[float]]] = None,
    input_std: Optional[Union[str, Sequence[float]]] = None,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> ConvertResult:
    """Write a model as safetensors, ONNX or Keras (`effnet convert SRC -o DST`)."""

def run(
    model: _Path,
    *images: _Path,
    input: Optional[_Path] = None,
    layout: Optional[_Layout] = None,
    output: Optional[_Path] = None,
    logits: bool = False,
    resolution: Optional[_Resolution] = None,
    naming: Optional[str] = None,
    key: Optional[str] = None,
    force: bool = False,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> RunDocument:
    """Run a model on a `.npy` batch or images (`effnet run`)."""

def compare(
    a: _Path,
    b: _Path,
    *,
    input: Optional[_Path] = None,
    layout: Optional[_Layout] = None,
    seed: Optional[_Number] = None,
    resolution: Optional[_Resolution] = None,
    naming_a: Optional[str] = None,
    naming_b: Optional[str] = None,
    tolerance: Optional[_Number] = None,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> CompareDocument:
    """Two models on the same input, stage by stage (`effnet compare`); outputs that differ
    return `equal` False."""

def report(
    model: _Path,
    *,
    output: Optional[_Path] = None,
    force: bool = False,
    naming: Optional[str] = None,
    key: Optional[str] = None,
    verify_checksums: bool = False,
    resolution: Optional[_Number] = None,
    baseline: Optional[_Path] = None,
    max_increase: Optional[_Number] = None,
    allow_different_settings: bool = False,
    quiet: bool = False,
    verbose: _Verbose = False,
) -> ReportResult:
    """One self-contained HTML page about a model (`effnet report MODEL -o FILE`); a model
    that deviates or is over budget returns `passed` False."""
