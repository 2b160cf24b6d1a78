//! The command line, as DESIGN.md's CLI contract defines it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use effnet_spec::{Scheme, Variant};

/// Move EfficientNet checkpoints between TensorFlow/Keras and PyTorch, audit them against the
/// B0–B7 spec, and report their cost per stage.
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
    /// Check a model against the B0–B7 spec: exit 0 if it conforms, 1 if it deviates.
    #[command(
        after_help = "Examples:\n  effnet audit model.pth\n  effnet audit model.pth --spec b1\n  effnet audit model.safetensors --width 1.3 --depth 1.6 --format md >> \"$GITHUB_STEP_SUMMARY\""
    )]
    Audit(AuditArgs),
    /// Write a model in another naming scheme and dtype (safetensors).
    #[command(
        after_help = "Examples:\n  effnet convert efficientnet_b0.pth -o b0.safetensors --dtype f16 --verify\n  effnet convert tf_b3.pth --source-naming timm-tf -o b3.safetensors --naming lukemelas"
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
    /// Print the man page (roff) to stdout.
    #[command(after_help = "Example:\n  effnet man > ~/.local/share/man/man1/effnet.1")]
    Man,
    /// Report params, MACs, FLOPs and activation memory per stage, block or layer.
    #[command(
        after_help = "Examples:\n  effnet cost --variant b0\n  effnet cost --variant b7 --by layer --format json\n  effnet cost --variant b2 --resolution 288 --batch 8 --dtype f16 --format md"
    )]
    Cost(CostArgs),
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
    /// Input resolution (square, 1–65536), overriding the variant's native one.
    #[arg(long, value_name = "R", value_parser = parse_resolution)]
    pub resolution: Option<usize>,
    /// The implementation whose conventions (padding, BatchNorm epsilon, preprocessing,
    /// classifier activation) the model follows [default: tf-official].
    #[arg(long, value_name = "SCHEME", value_parser = parse_scheme)]
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

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A model file or checkpoint: PyTorch (.pth/.pt, zip, legacy, TorchScript), safetensors,
    /// Keras (.h5, .keras, .weights.h5), a TensorFlow checkpoint (folder, prefix or .index)
    /// or a SavedModel directory.
    pub path: PathBuf,
    /// The naming scheme to read the tensor names with, instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = parse_scheme)]
    pub naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = InspectFormat::Table)]
    pub format: InspectFormat,
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
    /// A model file or checkpoint: PyTorch (.pth/.pt, zip, legacy, TorchScript), safetensors,
    /// Keras (.h5, .keras, .weights.h5), a TensorFlow checkpoint (folder, prefix or .index)
    /// or a SavedModel directory.
    pub path: PathBuf,
    /// The spec to compare with: b0 … b7, b8, l2, or `auto` (the closest).
    #[arg(long, value_name = "V|auto", default_value = "auto")]
    pub spec: String,
    /// Width coefficient of a custom spec (with --depth).
    #[arg(long, value_name = "W")]
    pub width: Option<f64>,
    /// Depth coefficient of a custom spec (with --width).
    #[arg(long, value_name = "D")]
    pub depth: Option<f64>,
    /// The naming scheme to read the tensor names with, instead of detecting it.
    #[arg(long, value_name = "SCHEME", value_parser = parse_scheme)]
    pub naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SpecFormat::Table)]
    pub format: SpecFormat,
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
    #[arg(long, value_name = "SCHEME", value_parser = parse_scheme)]
    pub naming: Option<Scheme>,
    /// Read the input's names with this scheme instead of detecting it (e.g. timm-tf).
    #[arg(long, value_name = "SCHEME", value_parser = parse_scheme)]
    pub source_naming: Option<Scheme>,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Keep BatchNorm running statistics in f32 when writing f16/bf16.
    #[arg(long)]
    pub keep_bn_f32: bool,
    /// Clamp values beyond the f16 range instead of refusing.
    #[arg(long)]
    pub clamp: bool,
    /// Write even when the output scheme pads differently (its outputs will differ).
    #[arg(long)]
    pub allow_padding_change: bool,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Re-read what was written and check every tensor against the source (safetensors).
    #[arg(long)]
    pub verify: bool,
    /// ONNX opset (13–21).
    #[arg(long, value_name = "N", default_value_t = 17)]
    pub opset: i64,
    /// ONNX: the input size to resolve TF "same" padding for (1–65536) [default: the model's].
    #[arg(long, value_name = "R", value_parser = parse_resolution)]
    pub resolution: Option<usize>,
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
    /// ONNX: layout of the model input.
    #[arg(long, value_enum, default_value_t = InputLayout::Nchw)]
    pub input_layout: InputLayout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputLayout {
    Nchw,
    Nhwc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Safetensors,
    Onnx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InspectFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// b0 … b7, b8 or l2.
    #[arg(value_parser = parse_variant)]
    pub variant: Variant,
    #[command(flatten)]
    pub scaling: ScalingArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SpecFormat::Table)]
    pub format: SpecFormat,
}

#[derive(Debug, Args)]
pub struct CostArgs {
    /// A model file or checkpoint to measure: PyTorch (.pth/.pt, zip, legacy, TorchScript),
    /// safetensors, Keras (.h5, .keras, .weights.h5), a TensorFlow checkpoint (folder, prefix or .index)
    /// or a SavedModel directory.
    #[arg(
        value_name = "PATH",
        conflicts_with = "variant",
        required_unless_present = "variant"
    )]
    pub path: Option<PathBuf>,
    /// Cost a variant built from the spec instead of a file: b0 … b7, b8 or l2.
    #[arg(long, value_name = "V", value_parser = parse_variant)]
    pub variant: Option<Variant>,
    #[command(flatten)]
    pub scaling: ScalingArgs,
    #[command(flatten)]
    pub read: ReadArgs,
    /// Images per batch (1–1048576).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_batch)]
    pub batch: usize,
    /// Activation dtype (sizes activation memory).
    #[arg(long, value_enum, default_value_t = ActivationDtype::F32)]
    pub dtype: ActivationDtype,
    /// One row per stage, block or layer.
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    Stage,
    Block,
    Layer,
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

fn parse_variant(s: &str) -> Result<Variant, String> {
    s.parse().map_err(|e: effnet_spec::SpecError| e.to_string())
}

fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse().map_err(|e: effnet_spec::SpecError| e.to_string())
}

/// The largest input size accepted anywhere (as the spec's).
const MAX_RESOLUTION: usize = 65_536;
/// The largest batch `cost` accepts.
const MAX_BATCH: usize = 1 << 20;

fn parse_in_range(text: &str, what: &str, max: usize) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("{what} must be a whole number from 1 to {max}")),
    }
}

fn parse_resolution(text: &str) -> Result<usize, String> {
    parse_in_range(text, "the resolution", MAX_RESOLUTION)
}

fn parse_batch(text: &str) -> Result<usize, String> {
    parse_in_range(text, "the batch", MAX_BATCH)
}
