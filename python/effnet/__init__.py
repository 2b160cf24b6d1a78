"""effnet from Python: the ``effnet`` binary's reports as plain dicts.

Every function runs the ``effnet`` binary installed with this package (``<venv>/bin/effnet``)
with ``--format json`` and returns the JSON document it prints, parsed: the schemas
(``effnet.spec/1``, ``effnet.inspect/1``, ``effnet.audit/1``, ``effnet.cost/1``,
``effnet.run/1``, ``effnet.compare/1``) are documented in docs/json.md. The binary holds all
the logic; this module only builds the command line and reads the answer.

Options are the command line's flags with underscores (``--source-naming`` is
``source_naming=``); ``True`` passes a flag, ``False`` or ``None`` leaves it out.

Exit codes become Python the same way for every function:

* 0: the document is returned.
* 1 is a verdict, not a failure (``audit``: the model deviates; ``cost`` with a baseline: over
  budget; ``compare``: the outputs differ): the document is returned, and its verdict field is
  false (``conforms``, ``baseline["within_budget"]``, ``equal``).
* 2 (a usage or input error) or anything else: :class:`EffnetError` is raised with the
  binary's message and ``exit_code``.

Warnings the binary prints on stderr are issued as :class:`EffnetWarning` (``quiet=True``
turns them off, as ``-q`` does); with ``verbose=True`` its other stderr lines are copied to
``sys.stderr``.

>>> import effnet
>>> effnet.cost(variant="b0")["total"]["params"]
5288548
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "EffnetError",
    "EffnetWarning",
    "OptionError",
    "audit",
    "binary",
    "compare",
    "convert",
    "cost",
    "inspect",
    "report",
    "run",
    "spec",
]


class EffnetError(Exception):
    """The ``effnet`` binary failed (exit 2: a usage or input error), or could not be run.

    Attributes:
        message: the error as the binary printed it, without its ``error:`` prefix.
        exit_code: the binary's exit status (2 for a usage or input error; negative: killed by
            that signal); 2 for an option refused before the binary ran (:class:`OptionError`,
            the status the binary gives an unknown flag); ``None`` when the binary was not
            found.
        stderr: everything the binary printed on stderr.
        argv: the command line that was run (``None`` if nothing ran).
    """

    def __init__(
        self,
        message: str,
        exit_code: int | None,
        stderr: str = "",
        argv: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.stderr = stderr
        self.argv = argv

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Picklable (multiprocessing, joblib) although __init__ takes more than the message.
        return (EffnetError, (self.message, self.exit_code, self.stderr, self.argv))


class OptionError(EffnetError, TypeError):
    """An option this function does not have, or a value of the wrong type.

    Raised before the binary runs; also a ``TypeError``, which is what Python raises for an
    unexpected keyword argument. ``exit_code`` is 2, the binary's status for a usage error.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, 2)

    def __reduce__(self) -> tuple[object, ...]:
        return (OptionError, (self.message,))


class EffnetWarning(UserWarning):
    """A warning the binary printed (``warning: …`` on stderr)."""


# Each command's options: Python name -> (the binary's flag, kind). Kinds: "flag" (a bool),
# "value" (str, int, float or a path), "out" (a path the binary writes; "-", standard
# output, is refused because stdout carries the JSON document). The option names are checked
# against `effnet <command> --help` and the stub (__init__.pyi) by python/tests/test_api.py.
_FLAG, _VALUE, _OUT = "flag", "value", "out"

_GLOBAL = {"quiet": ("--quiet", _FLAG), "verbose": ("--verbose", "count")}

_OPTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "spec": {
        "width": ("--width", _VALUE),
        "depth": ("--depth", _VALUE),
        "resolution": ("--resolution", _VALUE),
        "naming": ("--naming", _VALUE),
    },
    "inspect": {
        "naming": ("--naming", _VALUE),
        "key": ("--key", _VALUE),
        "tensors": ("--tensors", _FLAG),
        "verify_checksums": ("--verify-checksums", _FLAG),
        "dot": ("--dot", _OUT),
        "force": ("--force", _FLAG),
    },
    "audit": {
        "spec": ("--spec", _VALUE),
        "width": ("--width", _VALUE),
        "depth": ("--depth", _VALUE),
        "naming": ("--naming", _VALUE),
        "key": ("--key", _VALUE),
        "verify_checksums": ("--verify-checksums", _FLAG),
    },
    "cost": {
        "width": ("--width", _VALUE),
        "depth": ("--depth", _VALUE),
        "resolution": ("--resolution", _VALUE),
        "naming": ("--naming", _VALUE),
        "key": ("--key", _VALUE),
        "batch": ("--batch", _VALUE),
        "verify_checksums": ("--verify-checksums", _FLAG),
        "dtype": ("--dtype", _VALUE),
        "by": ("--by", _VALUE),
        "baseline": ("--baseline", _VALUE),
        "max_increase": ("--max-increase", _VALUE),
        "allow_different_settings": ("--allow-different-settings", _FLAG),
        "svg": ("--svg", _OUT),
        "force": ("--force", _FLAG),
    },
    "report": {
        "output": ("--output", _VALUE),
        "force": ("--force", _FLAG),
        "naming": ("--naming", _VALUE),
        "key": ("--key", _VALUE),
        "verify_checksums": ("--verify-checksums", _FLAG),
        "resolution": ("--resolution", _VALUE),
        "baseline": ("--baseline", _VALUE),
        "max_increase": ("--max-increase", _VALUE),
        "allow_different_settings": ("--allow-different-settings", _FLAG),
    },
    "convert": {
        "to": ("--to", _VALUE),
        "dtype": ("--dtype", _VALUE),
        "naming": ("--naming", _VALUE),
        "source_naming": ("--source-naming", _VALUE),
        "key": ("--key", _VALUE),
        "keep_bn_f32": ("--keep-bn-f32", _FLAG),
        "clamp": ("--clamp", _FLAG),
        "allow_padding_change": ("--allow-padding-change", _FLAG),
        "allow_shortcut_change": ("--allow-shortcut-change", _FLAG),
        "activation": ("--activation", _VALUE),
        "assume_architecture": ("--assume-architecture", _FLAG),
        "force": ("--force", _FLAG),
        "verify": ("--verify", _FLAG),
        "check": ("--check", _FLAG),
        "tolerance": ("--tolerance", _VALUE),
        "seed": ("--seed", _VALUE),
        "opset": ("--opset", _VALUE),
        "resolution": ("--resolution", _VALUE),
        "dynamic_size": ("--dynamic-size", _FLAG),
        "logits": ("--logits", _FLAG),
        "no_preprocessing": ("--no-preprocessing", _FLAG),
        "fold_bn": ("--fold-bn", _FLAG),
        "input_layout": ("--input-layout", _VALUE),
        "input_mean": ("--input-mean", _VALUE),
        "input_std": ("--input-std", _VALUE),
    },
    "run": {
        "input": ("--input", _VALUE),
        "layout": ("--layout", _VALUE),
        "output": ("--output", _OUT),
        "logits": ("--logits", _FLAG),
        "resolution": ("--resolution", _VALUE),
        "naming": ("--naming", _VALUE),
        "key": ("--key", _VALUE),
        "force": ("--force", _FLAG),
    },
    "compare": {
        "input": ("--input", _VALUE),
        "layout": ("--layout", _VALUE),
        "seed": ("--seed", _VALUE),
        "resolution": ("--resolution", _VALUE),
        "naming_a": ("--naming-a", _VALUE),
        "naming_b": ("--naming-b", _VALUE),
        "tolerance": ("--tolerance", _VALUE),
    },
}

# Commands whose exit 1 is a verdict the document carries: command -> the field that says so.
_VERDICTS = {"audit": "conforms", "compare": "equal", "cost": "baseline.within_budget"}

_binary: str | None = None


def binary() -> str:
    """The path of the ``effnet`` binary the functions run.

    In order: ``$EFFNET_BINARY``; ``effnet`` in this interpreter's scripts folder (the venv's
    ``bin/``, where ``pip install effnet`` puts it), then in the user scheme's
    (``pip install --user``); then the first ``effnet`` on ``PATH``. Found once per process.

    Raises:
        EffnetError: no binary was found (``exit_code`` None).
    """
    global _binary
    if _binary is None:
        _binary = _find_binary()
    return _binary


def _find_binary() -> str:
    name = "effnet.exe" if os.name == "nt" else "effnet"
    given = os.environ.get("EFFNET_BINARY")
    if given:
        if os.path.isfile(given) and os.access(given, os.X_OK):
            return given
        raise EffnetError(f"EFFNET_BINARY={given} is not an executable file", None)
    import sysconfig

    folders = [sysconfig.get_path("scripts")]
    try:
        if sys.version_info >= (3, 10):
            user = sysconfig.get_preferred_scheme("user")
        else:  # pragma: no cover
            user = "nt_user" if os.name == "nt" else "posix_user"
        folders.append(sysconfig.get_path("scripts", user))
    except (KeyError, ValueError):  # pragma: no cover - no user scheme (some embedded builds)
        pass
    for folder in folders:
        if folder:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    import shutil

    found = shutil.which(name)
    if found:
        return found
    raise EffnetError(
        f"the effnet binary was not found in {' or '.join(f for f in folders if f)} nor on PATH: "
        "reinstall the package (pip install effnet), or set EFFNET_BINARY to its path",
        None,
    )


def _fspath(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, os.PathLike)):
        raise OptionError(
            f"{name}={value!r}: expected a str, int, float or path, not {type(value).__name__}"
        )
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text


def _resolution(value: tuple[object, ...]) -> str:
    """``(224, 320)`` → ``"224x320"`` (height × width)."""
    if len(value) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise OptionError(
            f"resolution={value!r}: give a size (224), \"HxW\" or a (height, width) pair of ints"
        )
    return f"{value[0]}x{value[1]}"


def _arguments(command: str, options: dict[str, object]) -> list[str]:
    """The flags for `options`, refusing names `command` does not have."""
    table = _OPTIONS[command]
    argv: list[str] = []
    for name, value in options.items():
        known = table.get(name) or _GLOBAL.get(name)
        if known is None:
            if name == "format":
                raise OptionError(
                    f"effnet.{command}() has no format option: it always reads --format json "
                    "and returns the document as a dict"
                )
            names = sorted([*table, *_GLOBAL, *(["variant"] if command == "cost" else [])])
            import difflib

            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionError(
                f"effnet.{command}() got an unknown option {name!r}{hint}; "
                f"valid options: {', '.join(names)}"
            )
        flag, kind = known
        if value is None:
            continue
        if kind == _FLAG:
            if not isinstance(value, bool):
                raise OptionError(
                    f"{name}={value!r}: {name} is a flag, give True or False"
                )
            if value:
                argv.append(flag)
        elif kind == "count":
            if isinstance(value, bool):
                value = int(value)
            if not isinstance(value, int) or value < 0:
                raise OptionError(f"{name}={value!r}: give True, False or a count (0, 1, 2…)")
            argv.extend([flag] * value)
        else:
            if name == "resolution" and isinstance(value, tuple):
                value = _resolution(value)
            elif name in ("input_mean", "input_std") and isinstance(value, (tuple, list)):
                value = ",".join(str(float(v)) for v in value)
            text = _fspath(name, value)
            if kind == _OUT and text == "-":
                raise OptionError(
                    f"{name}='-': standard output carries the JSON document; name a file"
                )
            argv.append(f"{flag}={text}")
    return argv


def _positional(name: str, value: object) -> str:
    if value is None:
        raise OptionError(f"{name} is required")
    return _fspath(name, value)


def _verdict(document: dict[str, object], field: str) -> object:
    value: object = document
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _call(
    command: str,
    positionals: list[str],
    options: dict[str, object],
    fixed: tuple[str, ...] = (),
    *,
    json_output: bool = True,
    verdict_codes: tuple[int, ...] = (0,),
) -> tuple[object, list[str]]:
    """Runs `effnet <command>` with `options` (checked) and `fixed` (the function's own
    flags); returns its parsed JSON document (with `json_output=False`: its stdout text, or
    (stdout, exit code) when `verdict_codes` accepts more than 0) and
    the warnings it printed, which are also issued as EffnetWarning in the caller's caller."""
    argv = [binary(), command, *fixed, *_arguments(command, options)]
    if json_output:
        argv.append("--format=json")
    # `--` ends the options: a path that starts with `-` stays a path.
    argv += ["--", *positionals]
    import subprocess

    try:
        done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
    except (OSError, ValueError) as err:  # ValueError: a NUL in an argument
        raise EffnetError(f"cannot run {argv[0]}: {err}", None, argv=argv) from err
    stdout = done.stdout.decode("utf-8", "replace")
    stderr = done.stderr.decode("utf-8", "replace")
    code = done.returncode
    result: object = None
    if code in verdict_codes and not json_output:
        result = (stdout, code) if verdict_codes != (0,) else stdout
    elif code in (0, 1) and json_output:
        import json

        try:
            document = json.loads(stdout)
        except ValueError:
            document = None
        if isinstance(document, dict) and (
            code == 0 or _verdict(document, _VERDICTS.get(command, "")) is False
        ):
            result = document
    if result is None:
        raise _error(code, stdout, stderr, argv)
    verbose = bool(options.get("verbose"))
    warned = []
    for line in stderr.splitlines():
        if line.startswith("warning: "):
            warned.append(line[len("warning: ") :])
        elif verbose and line:
            print(line, file=sys.stderr)
    if warned:
        import warnings

        for line in warned:
            warnings.warn(line, EffnetWarning, stacklevel=3)
    return result, warned


def _error(code: int, stdout: str, stderr: str, argv: list[str]) -> EffnetError:
    if code < 0:
        message = f"effnet was stopped by signal {-code}"
    else:
        lines = [
            line
            for line in stderr.strip().splitlines()
            if not line.startswith("warning: ")
            and not line.startswith("For more information, try ")
        ]
        message = "\n".join(lines).strip()
        if message.startswith("error: "):
            message = message[len("error: ") :]
        if not message:
            message = f"effnet {argv[1]} exited with status {code}"
            if stdout.strip():
                message += f" and printed: {stdout.strip()[:500]}"
    return EffnetError(message, code, stderr, argv)


def spec(variant: str, **options: object) -> dict[str, object]:
    """The architecture of a variant, scaled: ``effnet spec VARIANT`` (``effnet.spec/1``).

    Args:
        variant: ``"b0"`` … ``"b7"``, ``"b8"``, ``"l2"``, ``"lite0"`` … ``"lite4"``, ``"v2-b0"`` … ``"v2-b3"``, ``"v2-s"``, ``"v2-m"``, ``"v2-l"`` or ``"v2-xl"``.
        width, depth: coefficients overriding the variant's.
        resolution: input size overriding the variant's native one: ``260``, or height and
            width as ``"224x320"`` or ``(224, 320)``.
        naming: whose conventions the model follows (``"tf-official"`` by default,
            ``"keras"``, ``"torchvision"``, ``"timm"``, ``"timm-tf"``, ``"lukemelas"``).
        quiet, verbose: as ``-q`` and ``-v``.

    Returns:
        The ``effnet.spec/1`` document: ``stages``, ``blocks``, ``semantics``, ``totals``, …

    Raises:
        EffnetError: an unknown variant or invalid coefficients (exit_code 2).
    """
    return _call("spec", [_positional("variant", variant)], options)[0]  # type: ignore[return-value]


def inspect(path: str | os.PathLike[str], **options: object) -> dict[str, object]:
    """What a model file is: ``effnet inspect PATH`` (``effnet.inspect/1``).

    Args:
        path: a PyTorch file, safetensors, Keras ``.h5``/``.keras``/``.weights.h5``, a
            TensorFlow checkpoint (folder, prefix or ``.index``) or a SavedModel folder.
        naming: read the tensor names with this scheme instead of detecting it.
        key: take the weights under this key of a checkpoint dictionary (``"model_ema"``).
        tensors: also list every tensor of the file with its statistics (``tensor_list``:
            name, shape, dtype, bytes, min, max, mean, std, nan, inf).
        verify_checksums: also compare the checksums the file records over its weights
            (zip CRC-32s, checkpoints' crc32c), which reads the whole file; a report reads
            only what it shows otherwise (as for :func:`audit` and :func:`cost`).
        dot: also write the graph for Graphviz to this file; force: overwrite it.
        quiet, verbose: as ``-q`` and ``-v``.

    Returns:
        The ``effnet.inspect/1`` document: ``container``, ``naming``, ``variant``,
        ``params``, ``tensors``, ``warnings``, …; a file that is not an EfficientNet has
        ``variant`` None and the reason in ``not_efficientnet``.

    Raises:
        EffnetError: the file cannot be read, or is refused (exit_code 2).
    """
    return _call("inspect", [_positional("path", path)], options)[0]  # type: ignore[return-value]


def audit(path: str | os.PathLike[str], **options: object) -> dict[str, object]:
    """Is this model the spec: ``effnet audit PATH`` (``effnet.audit/1``).

    A model that deviates is not an error: the report is returned with ``conforms`` False
    and the findings (the binary's exit 1).

    Args:
        path: a model file (as :func:`inspect`).
        spec: ``"auto"`` (default: the spec it matches, or the closest) or a variant.
        width, depth: coefficients of a custom spec (together).
        naming: read the tensor names with this scheme; key: the checkpoint key.
        verify_checksums: also compare the checksums over the weights (as :func:`inspect`).
        quiet, verbose: as ``-q`` and ``-v``.

    Returns:
        The ``effnet.audit/1`` document: ``spec``, ``conforms``, ``findings``,
        ``unverifiable``, ``warnings``.

    Raises:
        EffnetError: the file cannot be read, or the options are invalid (exit_code 2).
    """
    return _call("audit", [_positional("path", path)], options)[0]  # type: ignore[return-value]


def cost(
    path: str | os.PathLike[str] | None = None,
    *,
    variant: str | None = None,
    **options: object,
) -> dict[str, object]:
    """Params, MACs, FLOPs and activation memory: ``effnet cost`` (``effnet.cost/1``).

    Give a model file (``path``) or a ``variant`` built from the spec, not both.

    Args:
        path: a model file (as :func:`inspect`).
        variant: ``"b0"`` … ``"l2"``, instead of a file.
        resolution, width, depth: overrides (a weights-only file of a custom model needs
            ``resolution``); resolution is ``224``, ``"224x320"`` or ``(224, 320)`` (height,
            width).
        batch: images per batch; dtype: activation dtype, ``"f32"``, ``"f16"`` or ``"bf16"``.
        by: ``"stage"`` (default), ``"block"``, ``"layer"`` or ``"operator"``: adds
            ``blocks``/``layers`` (input and output shapes, kernel, stride, groups, share of
            the MACs) or ``operators`` (totals per operator class: convolution, depthwise
            convolution, dense, BatchNorm, activation, pooling, elementwise, other).
        naming, key, verify_checksums: as :func:`inspect`.
        baseline: a saved cost JSON file to compare with; max_increase: the growth allowed, in
            percent (``2`` or ``"2%"``); allow_different_settings: compare across settings.
            Over budget is not an error: the report is returned with
            ``report["baseline"]["within_budget"]`` False (the binary's exit 1).
        svg: also draw per-stage bars into this SVG file; force: overwrite it.
        quiet, verbose: as ``-q`` and ``-v``.

    Returns:
        The ``effnet.cost/1`` document: ``model``, ``stages``, ``total``, ``memory``,
        ``baseline``, …

    Raises:
        EffnetError: the file cannot be read, the baseline is unusable, or the options are
            invalid (exit_code 2).
    """
    if (path is None) == (variant is None):
        raise OptionError("effnet.cost() takes a model path or variant=, one of the two")
    if variant is None:
        return _call("cost", [_positional("path", path)], options)[0]  # type: ignore[return-value]
    fixed = (f"--variant={_fspath('variant', variant)}",)
    return _call("cost", [], options, fixed)[0]  # type: ignore[return-value]


def convert(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], **options: object
) -> dict[str, object]:
    """Write a model as safetensors, ONNX or Keras: ``effnet convert SRC -o DST``.

    The binary has no JSON form for ``convert`` yet; the return value is this module's:
    ``{"output": DST, "report": [lines], "warnings": [lines]}``, ``report`` being the lines
    the binary prints (what was written, BatchNorm epsilon moved, f16 losses, verification)
    and ``warnings`` its warnings (each also issued as :class:`EffnetWarning`).

    Args:
        src: the model to convert (any file :func:`inspect` reads).
        dst: the file to write (``.safetensors``, ``.onnx``, ``.keras``, ``.weights.h5`` or a
            tf-keras ``.h5``; ``to`` names the format when the extension does not).
        dtype: ``"f32"``, ``"f16"`` or ``"bf16"``; naming: the output's naming scheme;
            source_naming: read the input's names with this scheme (``"timm-tf"``); key.
        keep_bn_f32, clamp, allow_padding_change, allow_shortcut_change, activation,
            assume_architecture, force, verify: as the flags (docs/convert.md).
        check, tolerance, seed: run the source and the written output on a seeded input before
            the output replaces anything; a difference beyond ``tolerance`` raises
            :class:`EffnetError` with ``exit_code`` 1 and writes nothing.
        opset, resolution, dynamic_size, logits, no_preprocessing, fold_bn, input_layout:
            ONNX output (resolution: ``224``, ``"224x320"`` or ``(224, 320)``; also the input
            size a Keras file is written for).
        input_mean, input_std: Keras output from a PyTorch model: the per-channel mean and std
            (0–1 scale, ``(0.485, 0.456, 0.406)`` or ``"0.485,0.456,0.406"``) its input is
            normalized with, written into the model's Normalization layer.
        quiet, verbose: as ``-q`` and ``-v``.

    Raises:
        EffnetError: the conversion is refused or failed; nothing was written (exit_code 2).
    """
    out = _fspath("dst", dst)
    if out == "-":
        raise OptionError("dst='-': name a file (standard output carries the report)")
    text, warned = _call(
        "convert", [_positional("src", src)], options, (f"--output={out}",), json_output=False
    )
    return {
        "output": out,
        "report": [line for line in str(text).splitlines() if line.strip()],
        "warnings": warned,
    }


def run(
    model: str | os.PathLike[str], *images: str | os.PathLike[str], **options: object
) -> dict[str, object]:
    """Run a model: ``effnet run MODEL [IMAGE…]`` (``effnet.run/1``).

    Args:
        model: the model file.
        images: JPEG or PNG files (resized, cropped and normalized as the model's family
            expects), or none with ``input=``.
        input: a ``.npy`` batch fed as it is; layout: ``"nchw"`` (default) or ``"nhwc"``.
        output: write the output as float32 ``.npy``; force: overwrite it.
        logits: leave out a final softmax; resolution: the image crop size.
        naming, key: as :func:`inspect`.
        quiet, verbose: as ``-q`` and ``-v``.

    Returns:
        The ``effnet.run/1`` document: ``input``, ``output``, ``top``, ``timing_ms``,
        ``memory``.

    Raises:
        EffnetError: the model or input cannot be read or run (exit_code 2).
    """
    positionals = [_positional("model", model), *(_positional("images", i) for i in images)]
    return _call("run", positionals, options)[0]  # type: ignore[return-value]


def compare(a: str | os.PathLike[str], b: str | os.PathLike[str], **options: object) -> dict[str, object]:
    """Two models on the same input, stage by stage: ``effnet compare A B``
    (``effnet.compare/1``).

    Outputs that differ are not an error: the report is returned with ``equal`` False (the
    binary's exit 1).

    Args:
        a, b: the two models; ``b`` is the reference of relative differences.
        input: raw pixels (0–255, ``.npy``) both get, each through its own preprocessing;
            layout: its layout. Without it: seed and resolution of random pixels (``224``,
            ``"224x320"`` or ``(224, 320)``).
        naming_a, naming_b: read A's or B's names with this scheme.
        tolerance: the largest relative difference still equal (default 1e-4).
        quiet, verbose: as ``-q`` and ``-v``.

    Returns:
        The ``effnet.compare/1`` document: ``stages``, ``output``, ``first_differing_stage``,
        ``equal``, …

    Raises:
        EffnetError: a file cannot be read or the two cannot be compared (exit_code 2).
    """
    return _call("compare", [_positional("a", a), _positional("b", b)], options)[0]  # type: ignore[return-value]


def report(model: str | os.PathLike[str], **options: object) -> dict[str, object]:
    """One self-contained HTML page about a model: ``effnet report MODEL -o FILE``.

    The page holds what :func:`inspect` says, the :func:`audit` verdict and findings
    (``spec="auto"``), the per-stage :func:`cost` table and charts, and, with ``baseline``, the
    comparison with a saved cost report. A model that deviates or is over budget is not an
    error: the page is written and ``passed`` is False (the binary's exit 1).

    Args:
        model: a model file (as :func:`inspect`).
        output: the HTML file to write [default: ``<model's name without its extension>.report.html``
            in the current folder, as the binary]; ``"-"`` returns the page as ``html`` instead.
        force: overwrite ``output`` if it exists.
        naming, key, verify_checksums: as :func:`inspect`; resolution: the input size of the
            cost (a weights-only file of a custom model needs one).
        baseline, max_increase, allow_different_settings: as :func:`cost`.
        quiet, verbose: as ``-q`` and ``-v``.

    Returns:
        ``{"output": path, "passed": bool, "html": str | None, "warnings": [lines]}``:
        ``passed`` is True when the model conforms to its spec and no cost total grew past the
        budget; ``html`` is the page when ``output="-"``.

    Raises:
        EffnetError: the model or the baseline cannot be read, or the output is refused (an
            existing file without ``force``, an input): nothing was written (exit_code 2).
    """
    given = options.get("output")
    out = _fspath("output", given) if given is not None else _default_report(model)
    options = {**options, "output": out}
    (text, code), warned = _call(  # type: ignore[misc]
        "report", [_positional("model", model)], options, json_output=False, verdict_codes=(0, 1)
    )
    return {
        "output": out,
        "passed": code == 0,
        "html": text if out == "-" else None,
        "warnings": warned,
    }


def _default_report(model: object) -> str:
    # The binary's default, spelled out so the path can be returned: the model's file (or
    # folder) name without its last extension, `.report.html`, in the current folder.
    name = os.path.basename(os.path.normpath(_positional("model", model)))
    stem = os.path.splitext(name)[0] if name not in ("", ".", "..") else ""
    return f"{stem or 'model'}.report.html"


def __getattr__(name: str) -> str:
    # The version is read lazily: importlib.metadata costs more to import than this module.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("effnet")
        except PackageNotFoundError:  # run from the source folder: ask the binary
            import subprocess

            out = subprocess.run([binary(), "--version"], capture_output=True, text=True)
            return out.stdout.split()[-1] if out.returncode == 0 and out.stdout else "unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
