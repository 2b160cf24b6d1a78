//! The command line: subcommands, their flags and the values each flag accepts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use effnet_spec::{Scheme, Variant};

/// Move EfficientNet checkpoints between TensorFlow/Keras and PyTorch, audit them against the
/// spec of their family (B0–B7, Lite0–4, V2), and report their cost per stage.
#[derive(Debug, Parser)]
#[command(name = "effnet", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print no warnings, notes or progress on stderr (errors still are).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more about what was read and assumed (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the architecture of a variant: the paper's Table 1, scaled.
    #[command(
        after_help = "Examples:\n  effnet spec b0\n  effnet spec b3 --format json\n  effnet spec b0 --width 1.3 --depth 1.6 --resolution 256"
    )]
    Spec(SpecArgs),
    /// Say what a model file is: container, naming scheme, variant, tensors, parameters.
    #[command(
        after_help = "Examples:\n  effnet inspect model.pth\n  effnet inspect checkpoint.pth --key model_ema --format json"
    )]
    Inspect(InspectArgs),
    /// Check a model against its EfficientNet spec: exit 0 if it conforms, 1 if it deviates.
    #[command(
        after_help = "Examples:\n  effnet audit model.pth\n  effnet audit model.pth --spec b1\n  effnet audit model.safetensors --width 1.3 --depth 1.6 --format md >> \"$GITHUB_STEP_SUMMARY\""
    )]
    Audit(AuditArgs),
    /// Write a model as safetensors (any PyTorch naming scheme; f32, f16, bf16), as ONNX (the
    /// source's padding, epsilon and preprocessing kept; f32 or f16) or as a Keras file
    /// (`.keras`, `.weights.h5`, tf-keras `.h5`; f32 or f16).
    #[command(
        after_help = "Examples:\n  effnet convert efficientnet_b0.pth -o b0.safetensors --dtype f16 --verify\n  effnet convert model.h5 -o model.onnx --resolution 224\n  effnet convert model.pth -o model.onnx --dtype f16 --fold-bn\n  effnet convert tf_b3.pth --source-naming timm-tf -o b3.safetensors --naming lukemelas\n  effnet convert tf_b0.pth --source-naming timm-tf -o b0.keras --check"
    )]
    Convert(ConvertArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  effnet completions bash > ~/.local/share/bash-completion/completions/effnet\n  effnet completions zsh > ~/.zfunc/_effnet"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff): effnet(1), or a subcommand's; --dir writes them all.
    #[command(
        after_help = "Examples:\n  effnet man > ~/.local/share/man/man1/effnet.1\n  effnet man convert | man -l -\n  effnet man --dir ~/.local/share/man/man1"
    )]
    Man(ManArgs),
    /// Report params, MACs, FLOPs and activation memory per stage, block, layer or operator
    /// class, with a memory summary.
    #[command(
        after_help = "Examples:\n  effnet cost --variant b0\n  effnet cost --variant b7 --by layer --format json\n  effnet cost --variant b0 --by operator\n  effnet cost --variant b0 --resolution 224x320\n  effnet cost --variant b2 --resolution 288 --batch 8 --dtype f16 --format md"
    )]
    Cost(CostArgs),
    /// Run a model on a .npy array or on images: its output, and the top-5 classes.
    #[command(
        after_help = "Examples:\n  effnet run model.pth photo.jpg\n  effnet run model.h5 --input x.npy --layout nhwc --output y.npy\n  effnet run model.safetensors --input x.npy --logits --format json"
    )]
    Run(RunArgs),
    /// Run two models on the same input and compare them stage by stage: exit 0 when the
    /// outputs agree within the tolerance, 1 when not, 2 when they cannot be compared.
    #[command(
        after_help = "Examples:\n  effnet compare model.pth model-timm.safetensors --resolution 224\n  effnet compare a.pth b.safetensors --seed 7 --resolution 300 --format json\n  effnet compare a.pth b.safetensors --input pixels.npy --tolerance 1e-5"
    )]
    Compare(CompareArgs),
    /// Write one self-contained HTML page about a model: inspect, audit, cost and a baseline.
    ///
    /// The page holds what `inspect` says, the `audit` verdict and findings (spec auto), the
    /// per-stage `cost` table and charts, and with --baseline the comparison with a saved cost
    /// report. Inline CSS and SVG, no scripts, nothing loaded from the network. Without -o it is
    /// written to <MODEL's name without its extension>.report.html in the current folder. Exit 0
    /// when written and the model conforms (and is within budget), 1 when written but it
    /// deviates or is over budget, 2 when nothing could be written.
    #[command(
        after_help = "Examples:\n  effnet report efficientnet_b0.pth\n  effnet report model.safetensors --resolution 224 -o report.html --force\n  effnet report model.pth --baseline ci/cost-baseline.json --max-increase 2% -o report.html"
    )]
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The model file or checkpoint (any format `inspect` reads).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// The HTML file to write (`-` for stdout) [default: <MODEL stem>.report.html in the
    /// current folder].
    #[arg(short, long, value_name = "FILE.html")]
    pub output: Option<PathBuf>,
    /// Overwrite the output if it exists.
    #[arg(long)]
    pub force: bool,
    /// The naming scheme to read the tensor names with, instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
    /// The input size the cost is measured at: R (square) or HxW, 1–65536 each [default: the
    /// one the file records].
    #[arg(long, value_name = "R|HxW", value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// Compare the cost with a saved `effnet cost --format json` report; exit 1 when a total
    /// grows past --max-increase.
    #[arg(long, value_name = "FILE.json")]
    pub baseline: Option<PathBuf>,
    /// The growth a total may have over the baseline, in percent (`2%` or `2`).
    #[arg(long, value_name = "PCT", default_value = "0", value_parser = parse_percent, requires = "baseline")]
    pub max_increase: f64,
    /// Compare with a baseline measured at another batch, dtype, resolution or naming.
    #[arg(long, requires = "baseline")]
    pub allow_different_settings: bool,
}

/// A variant and the coefficients that may override it.
#[derive(Debug, Args)]
pub struct ScalingArgs {
    /// Width coefficient, overriding the variant's.
    #[arg(long, value_name = "W")]
    pub width: Option<f64>,
    /// Depth coefficient, overriding the variant's.
    #[arg(long, value_name = "D")]
    pub depth: Option<f64>,
    /// Input resolution, overriding the variant's native one: R (square) or HxW (e.g.
    /// 224x320), each side 1–65536.
    #[arg(long, value_name = "R|HxW", value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// The implementation whose conventions (padding, BatchNorm epsilon, preprocessing,
    /// classifier activation) the model follows [default: tf-official].
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming: Option<Scheme>,
}

/// How to read a model file.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Take the weights under this top-level key of a checkpoint dictionary
    /// (e.g. `model_ema`); by default the model's own weights are found.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
}

/// Whether a report that reads no weight compares the checksums over them.
#[derive(Debug, Args)]
pub struct ChecksumArgs {
    /// Also compare every checksum the file records over its weights (zip CRC-32s, tensor
    /// bundles' crc32c), which reads the whole file. Without it, a report reads only what it
    /// shows; the metadata it reads is checked either way, and every command that reads
    /// weights (convert, run, compare) compares them all.
    #[arg(long)]
    pub verify_checksums: bool,
}

impl ChecksumArgs {
    /// When the import compares them.
    pub fn policy(&self) -> effnet_ir::ChecksumPolicy {
        if self.verify_checksums {
            effnet_ir::ChecksumPolicy::AtOpen
        } else {
            effnet_ir::ChecksumPolicy::Deferred
        }
    }
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print [default: effnet(1)].
    #[arg(value_name = "SUBCOMMAND", conflicts_with = "dir")]
    pub subcommand: Option<String>,
    /// Write every page (effnet.1, effnet-<subcommand>.1) into this folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Overwrite pages that exist in --dir.
    #[arg(long, requires = "dir")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model files or checkpoints: PyTorch (.pth/.pt, zip, legacy, TorchScript), safetensors,
    /// Keras (.h5, .keras, .weights.h5), a TensorFlow checkpoint (folder, prefix or .index)
    /// or a SavedModel directory. Several are read on every core.
    #[arg(value_name = "PATH", required_unless_present = "recursive")]
    pub paths: Vec<PathBuf>,
    /// Also read every model under DIR: model files by suffix, SavedModels and TensorFlow
    /// checkpoint folders as one model each (repeatable; symbolic links are not followed).
    #[arg(long, value_name = "DIR")]
    pub recursive: Vec<PathBuf>,
    /// The naming scheme to read the tensor names with, instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = InspectFormat::Table)]
    pub format: InspectFormat,
    /// Also list every tensor of the file: name, shape, dtype, bytes, min, max, mean, std,
    /// NaN and Inf counts (NaN and Inf left out of the statistics).
    #[arg(long)]
    pub tensors: bool,
    /// Also write the graph for Graphviz (stages as clusters) to FILE (`-` for stdout instead
    /// of the report).
    #[arg(long, value_name = "FILE")]
    pub dot: Option<PathBuf>,
    /// Overwrite the --dot file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Model files or checkpoints: PyTorch (.pth/.pt, zip, legacy, TorchScript), safetensors,
    /// Keras (.h5, .keras, .weights.h5), a TensorFlow checkpoint (folder, prefix or .index)
    /// or a SavedModel directory. Several are read on every core.
    #[arg(value_name = "PATH", required_unless_present = "recursive")]
    pub paths: Vec<PathBuf>,
    /// Also read every model under DIR: model files by suffix, SavedModels and TensorFlow
    /// checkpoint folders as one model each (repeatable; symbolic links are not followed).
    #[arg(long, value_name = "DIR")]
    pub recursive: Vec<PathBuf>,
    /// The spec to compare with: b0 … b7, b8, l2, or `auto` (the closest).
    #[arg(long, value_name = "V|auto", default_value = "auto", value_parser = audit_spec_parser())]
    pub spec: String,
    /// Width coefficient of a custom spec (with --depth).
    #[arg(long, value_name = "W")]
    pub width: Option<f64>,
    /// Depth coefficient of a custom spec (with --width).
    #[arg(long, value_name = "D")]
    pub depth: Option<f64>,
    /// The naming scheme to read the tensor names with, instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
    /// Output format (`jsonl`: one JSON object per model and line).
    #[arg(long, value_enum, default_value_t = AuditFormat::Table)]
    pub format: AuditFormat,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The model file or checkpoint to convert (any format `inspect` reads).
    pub input: PathBuf,
    /// The file to write.
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,
    /// Output format [default: from the extension of OUT].
    #[arg(long, value_enum)]
    pub to: Option<OutputFormat>,
    /// Dtype of the written weights.
    #[arg(long, value_enum, default_value_t = ActivationDtype::F32)]
    pub dtype: ActivationDtype,
    /// Naming scheme of the output [default: the input's; timm-tf for TF/Keras inputs].
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming: Option<Scheme>,
    /// Read the input's names with this scheme instead of detecting it (e.g. timm-tf).
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub source_naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Keep BatchNorm running statistics in f32 when writing f16/bf16.
    #[arg(long)]
    pub keep_bn_f32: bool,
    /// Clamp values beyond the f16 range instead of refusing.
    #[arg(long)]
    pub clamp: bool,
    /// Write even when the output scheme pads differently (its outputs will differ; recorded
    /// in the output's `effnet.changes`).
    #[arg(long)]
    pub allow_padding_change: bool,
    /// Write even when the output scheme adds or drops a residual shortcut (EfficientNet-
    /// PyTorch drops a stage's first one; its outputs will differ; recorded in the output).
    #[arg(long)]
    pub allow_shortcut_change: bool,
    /// The activation of the stem, blocks and head, for a file that does not record it and
    /// an architecture effnet does not recognise (e.g. EfficientNet-Lite: relu6).
    #[arg(long, value_enum, value_name = "ACTIVATION")]
    pub activation: Option<StatedActivation>,
    /// For an architecture effnet does not recognise: accept EfficientNet's stage strides and
    /// the naming scheme's padding and BatchNorm epsilon (recorded in the output).
    #[arg(long)]
    pub assume_architecture: bool,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Re-read what was written and check every tensor against the source (safetensors).
    #[arg(long)]
    pub verify: bool,
    /// Before the output replaces anything, run the source and the written output on a seeded
    /// input at the model's resolution; refuse (exit 1, nothing written) when they differ.
    #[arg(long)]
    pub check: bool,
    /// --check: the largest relative difference of the outputs accepted [default: 1e-4 for
    /// f32 output, 5e-3 for f16, 1e-1 for bf16: what rounding the weights costs].
    #[arg(long, value_name = "T", requires = "check", value_parser = parse_tolerance)]
    pub tolerance: Option<f64>,
    /// --check: the seed of the input's pixels.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "check")]
    pub seed: u64,
    /// ONNX opset (13–21) [default: 17].
    #[arg(long, value_name = "N")]
    pub opset: Option<i64>,
    /// ONNX (and --check): the input size to resolve TF "same" padding for, R or HxW (each
    /// side 1–65536) [default: the model's].
    #[arg(long, value_name = "R|HxW", value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// ONNX: keep height and width dynamic (TF "same" convs as auto_pad=SAME_UPPER).
    #[arg(long)]
    pub dynamic_size: bool,
    /// ONNX: output logits even when the model ends in softmax.
    #[arg(long)]
    pub logits: bool,
    /// ONNX: leave out the preprocessing a Keras model carries.
    #[arg(long)]
    pub no_preprocessing: bool,
    /// ONNX: fold every BatchNorm into the convolution before it.
    #[arg(long)]
    pub fold_bn: bool,
    /// ONNX: layout of the model input [default: nchw].
    #[arg(long, value_enum)]
    pub input_layout: Option<InputLayout>,
    /// Keras: the per-channel mean (0–1 pixel scale) a PyTorch source expects its input
    /// normalized with, written into the model's Normalization layer [default: the source
    /// scheme's convention, ImageNet's].
    #[arg(long, value_name = "R,G,B", value_parser = parse_channels, requires = "input_std")]
    pub input_mean: Option<Channels>,
    /// Keras: the per-channel standard deviation to go with --input-mean.
    #[arg(long, value_name = "R,G,B", value_parser = parse_channels, requires = "input_mean")]
    pub input_std: Option<Channels>,
}

/// Per-channel values given as `R,G,B` (or one value for every channel).
#[derive(Clone, Debug, PartialEq)]
pub struct Channels(pub Vec<f64>);

fn parse_channels(text: &str) -> Result<Channels, String> {
    let values: Result<Vec<f64>, _> = text.split(',').map(|v| v.trim().parse::<f64>()).collect();
    match values {
        Ok(v) if (v.len() == 1 || v.len() == 3) && v.iter().all(|x| x.is_finite()) => {
            Ok(Channels(v))
        }
        _ => Err(format!(
            "`{}`: expected one number or three, comma-separated (0.485,0.456,0.406)",
            effnet_io::text::excerpt(text)
        )),
    }
}

/// An activation `--activation` can state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatedActivation {
    Swish,
    Relu,
    Relu6,
}

impl StatedActivation {
    /// The IR's activation.
    pub fn ir(self) -> effnet_ir::Activation {
        match self {
            StatedActivation::Swish => effnet_ir::Activation::Swish,
            StatedActivation::Relu => effnet_ir::Activation::Relu,
            StatedActivation::Relu6 => effnet_ir::Activation::Relu6,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputLayout {
    Nchw,
    Nhwc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// safetensors in a PyTorch naming scheme.
    Safetensors,
    /// ONNX.
    Onnx,
    /// Keras 3 `.keras` (config, metadata and weights).
    Keras,
    /// Keras 3 `.weights.h5`.
    #[value(name = "weights-h5")]
    WeightsH5,
    /// tf-keras (Keras 2) full-model `.h5` (config and weights).
    H5,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    Table,
    Json,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// b0 … b7, b8 or l2.
    #[arg(value_parser = variant_parser())]
    pub variant: Variant,
    #[command(flatten)]
    pub scaling: ScalingArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SpecFormat::Table)]
    pub format: SpecFormat,
}

#[derive(Debug, Args)]
pub struct CostArgs {
    /// Model files or checkpoints to measure: PyTorch (.pth/.pt, zip, legacy, TorchScript),
    /// safetensors, Keras (.h5, .keras, .weights.h5), a TensorFlow checkpoint (folder, prefix
    /// or .index) or a SavedModel directory. Several are read on every core.
    #[arg(
        value_name = "PATH",
        conflicts_with = "variant",
        required_unless_present_any = ["variant", "recursive"]
    )]
    pub paths: Vec<PathBuf>,
    /// Also measure every model under DIR: model files by suffix, SavedModels and TensorFlow
    /// checkpoint folders as one model each (repeatable; symbolic links are not followed).
    #[arg(long, value_name = "DIR", conflicts_with = "variant")]
    pub recursive: Vec<PathBuf>,
    /// Cost a variant built from the spec instead of a file: b0 … b7, b8 or l2.
    #[arg(long, value_name = "V", value_parser = variant_parser())]
    pub variant: Option<Variant>,
    #[command(flatten)]
    pub scaling: ScalingArgs,
    #[command(flatten)]
    pub read: ReadArgs,
    #[command(flatten)]
    pub checks: ChecksumArgs,
    /// Images per batch (1–1048576).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_batch)]
    pub batch: usize,
    /// Activation dtype (sizes activation memory).
    #[arg(long, value_enum, default_value_t = ActivationDtype::F32)]
    pub dtype: ActivationDtype,
    /// One row per stage, block, layer, or operator class (convolution, depthwise
    /// convolution, dense, BatchNorm, activation, pooling, elementwise, other).
    #[arg(long, value_enum, default_value_t = By::Stage)]
    pub by: By,
    /// Output format.
    #[arg(long, value_enum, default_value_t = CostFormat::Table)]
    pub format: CostFormat,
    /// Compare with a saved `--format json` report; exit 1 when a total grows past
    /// --max-increase.
    #[arg(long, value_name = "FILE.json")]
    pub baseline: Option<PathBuf>,
    /// Also draw per-stage MACs, params and activation memory as bars into an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub svg: Option<PathBuf>,
    /// Overwrite the --svg file if it exists.
    #[arg(long)]
    pub force: bool,
    /// The growth a total may have over the baseline, in percent (`2%` or `2`).
    #[arg(long, value_name = "PCT", default_value = "0", value_parser = parse_percent, requires = "baseline")]
    pub max_increase: f64,
    /// Compare with a baseline measured at another batch, dtype, resolution or naming.
    #[arg(long, requires = "baseline")]
    pub allow_different_settings: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SpecFormat {
    Table,
    Json,
    Md,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CostFormat {
    Table,
    Json,
    Csv,
    Md,
    Jsonl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Md,
    Jsonl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    Stage,
    Block,
    Layer,
    Operator,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ActivationDtype {
    F32,
    F16,
    Bf16,
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("`{s}` is not a percentage (e.g. 2%)"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "`{s}`: the increase must be a non-negative percentage"
        ))
    }
}

/// Parses with the type's own `FromStr` (any case, aliases such as `efficientnet-b0`) and
/// lists the canonical names in `--help`, errors and completions.
#[derive(Clone)]
struct NamedParser<T> {
    names: fn() -> Vec<&'static str>,
    parse: fn(&str) -> Result<T, String>,
}

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for NamedParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        (self.parse)(&text).map_err(|message| {
            let arg = arg.map_or_else(|| "the value".to_owned(), |a| format!("--{}", a.get_id()));
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{text}' for {arg}: {message}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            (self.names)()
                .into_iter()
                .map(clap::builder::PossibleValue::new),
        ))
    }
}

fn variant_parser() -> NamedParser<Variant> {
    NamedParser {
        names: || Variant::ALL.iter().map(|v| v.name()).collect(),
        parse: |s| s.parse().map_err(|e: effnet_spec::SpecError| e.to_string()),
    }
}

fn scheme_parser() -> NamedParser<Scheme> {
    NamedParser {
        names: || Scheme::ALL.iter().map(|v| v.name()).collect(),
        parse: |s| s.parse().map_err(|e: effnet_spec::SpecError| e.to_string()),
    }
}

/// `auto` or a variant, kept as text for the audit to resolve.
fn audit_spec_parser() -> NamedParser<String> {
    NamedParser {
        names: || {
            std::iter::once("auto")
                .chain(Variant::ALL.iter().map(|v| v.name()))
                .collect()
        },
        parse: |s| {
            if s.eq_ignore_ascii_case("auto") || s.parse::<Variant>().is_ok() {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "unknown spec `{s}` (expected auto or a variant: {})",
                    Variant::ALL.map(|v| v.name()).join(", ")
                ))
            }
        },
    }
}

/// The largest input size accepted anywhere (as the spec's).
const MAX_RESOLUTION: usize = 65_536;
/// The largest batch `cost` accepts.
const MAX_BATCH: usize = 1 << 20;

fn parse_in_range(text: &str, what: &str, max: usize) -> Result<usize, String> {
    match text.trim().parse::<u128>() {
        Ok(0) if what == "--batch" => Err("--batch must be at least 1".into()),
        Ok(n) if (1..=max as u128).contains(&n) => Ok(n as usize),
        Ok(_) => Err(format!(
            "{what} {text} is out of range: it must be a whole number from 1 to {max}"
        )),
        Err(_) => Err(format!(
            "{what} `{text}` is not a whole number from 1 to {max}"
        )),
    }
}

/// An input size: `R` for a square `R×R`, or `HxW` (height first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution(pub [usize; 2]);

impl Resolution {
    /// `[height, width]`.
    pub fn hw(self) -> [usize; 2] {
        self.0
    }

    /// The side of a square size.
    pub fn square(self) -> Option<usize> {
        let [h, w] = self.0;
        (h == w).then_some(h)
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [h, w] = self.0;
        write!(f, "{h}×{w}")
    }
}

/// `224`, `224x320`, `224X320` or `224×320`.
fn parse_resolution(text: &str) -> Result<Resolution, String> {
    let trimmed = text.trim();
    let parts: Vec<&str> = trimmed.split(['x', 'X', '×']).collect();
    match parts.as_slice() {
        [r] => parse_in_range(r, "resolution", MAX_RESOLUTION).map(|r| Resolution([r, r])),
        [h, w] => {
            let side = |s: &str, what: &str| {
                parse_in_range(s, what, MAX_RESOLUTION)
                    .map_err(|e| format!("{e} (resolution `{trimmed}`: R, or HxW such as 224x320)"))
            };
            Ok(Resolution([side(h, "height")?, side(w, "width")?]))
        }
        _ => Err(format!(
            "resolution `{trimmed}` is not R or HxW (e.g. 224 or 224x320)"
        )),
    }
}

fn parse_batch(text: &str) -> Result<usize, String> {
    parse_in_range(text, "--batch", MAX_BATCH)
}

/// How a `.npy` image batch is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// `[n, c, h, w]` (PyTorch).
    #[default]
    Nchw,
    /// `[n, h, w, c]` (TensorFlow/Keras).
    Nhwc,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum RunFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model file (any format effnet reads).
    #[arg(value_name = "MODEL")]
    pub model: PathBuf,
    /// JPEG or PNG images: resized (bicubic) and center cropped the way the model's family
    /// evaluates (torchvision's per-variant sizes, timm's 0.875, TensorFlow's 32-pixel
    /// padding), then normalized as the model expects.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// A .npy batch (float32; float16 and float64 accepted), fed as it is: what the source
    /// framework's model takes (raw 0–255 pixels for a Keras model, normalized ones for a
    /// PyTorch one).
    #[arg(long, value_name = "X.npy", conflicts_with = "images")]
    pub input: Option<PathBuf>,
    /// Layout of the --input array.
    #[arg(long, value_enum, default_value_t = Layout::Nchw)]
    pub layout: Layout,
    /// Write the output (float32 .npy).
    #[arg(short, long, value_name = "Y.npy")]
    pub output: Option<PathBuf>,
    /// Leave out a final softmax (Keras applications end in one).
    #[arg(long)]
    pub logits: bool,
    /// Image crop size, R (images are cropped square) [default: the one the model records].
    #[arg(long, value_name = "R|HxW", value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// Read the tensor names with this scheme instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Overwrite an existing --output.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, default_value_t = RunFormat::Table)]
    pub format: RunFormat,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The first model.
    #[arg(value_name = "A")]
    pub a: PathBuf,
    /// The second model, the reference of relative differences.
    #[arg(value_name = "B")]
    pub b: PathBuf,
    /// Raw pixels (0–255, .npy) both models get, each through its own preprocessing.
    #[arg(long, value_name = "X.npy", conflicts_with_all = ["seed", "resolution"])]
    pub input: Option<PathBuf>,
    /// Layout of the --input array.
    #[arg(long, value_enum, default_value_t = Layout::Nchw)]
    pub layout: Layout,
    /// Seed of the random pixels used without --input [default: 0].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Input size of the random pixels, R or HxW [default: the one a model records, else 224].
    #[arg(long, value_name = "R|HxW", value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// Read A's tensor names with this scheme instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming_a: Option<Scheme>,
    /// Read B's tensor names with this scheme instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = scheme_parser())]
    pub naming_b: Option<Scheme>,
    /// Largest relative difference of the outputs, max|a−b| / max|b|, still equal.
    #[arg(long, value_name = "T", default_value_t = effnet_exec::DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    #[arg(long, value_enum, default_value_t = RunFormat::Table)]
    pub format: RunFormat,
}

fn parse_tolerance(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!(
            "the tolerance `{text}` must be a number ≥ 0 (e.g. 1e-4)"
        )),
    }
}
