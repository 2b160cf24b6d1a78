//! Running a compiled plan: values freed when their last reader has run, element-wise steps
//! done in place on a value nobody else reads, the peak of live bytes measured.

use std::collections::HashMap;

use effnet_ir::{Graph, NodeId};
use rayon::prelude::*;

use crate::kernels::act::{self, Act, bias_act};
use crate::kernels::conv::{ConvGeometry, Filter, conv};
use crate::kernels::depthwise::{DwGeometry, depthwise};
use crate::kernels::gemm::{MatRef, matmul};
use crate::plan::{ConvStep, Kernel, Plan, ValueId};
use crate::{Array, ExecError};

/// How to compile a graph.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// Leave out a softmax that produces the graph output (the model's logits).
    pub logits: bool,
}

/// What one run produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The graph output: `[n, classes]` for a classifier, `[n, c, h, w]` for a map.
    pub output: Array,
    /// The values of the nodes asked for in [`Executor::run_capturing`], in the order asked.
    pub captured: Vec<(NodeId, Array)>,
    /// The most bytes of activations (and scratch buffers) held at once.
    pub peak_bytes: u64,
}

/// A graph compiled for execution; reusable for any number of runs and input sizes.
#[derive(Debug)]
pub struct Executor {
    plan: Plan,
}

/// A value at run time: NCHW, `h = w = 1` with `vector` set for `[n, features]`.
#[derive(Clone, Debug)]
struct Value {
    data: Vec<f32>,
    shape: [usize; 4],
    vector: bool,
}

impl Value {
    fn plane(&self) -> usize {
        self.shape[2] * self.shape[3]
    }

    fn bytes(&self) -> u64 {
        (self.data.len() * 4) as u64
    }

    fn into_array(self) -> Array {
        let shape = if self.vector {
            vec![self.shape[0], self.shape[1]]
        } else {
            self.shape.to_vec()
        };
        Array {
            shape,
            data: self.data,
        }
    }
}

/// Buffers of freed values, reused for new ones: a fresh allocation of tens of megabytes is a
/// memory map whose every page faults on first write, which cost more than the convolution
/// writing it. Buffers come back with stale contents; every kernel writes all of its output.
#[derive(Default)]
struct Pool {
    free: Vec<Vec<f32>>,
    bytes: u64,
}

impl Pool {
    /// A buffer of `len` floats: the smallest pooled one that fits, else a new one (and then
    /// the largest pooled buffer, too small for this request, is released, so what the pool
    /// holds stays bounded by what the run held at its peak).
    fn get(&mut self, len: usize) -> Result<Vec<f32>, ExecError> {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut b = self.free.swap_remove(i);
                self.bytes -= (b.capacity() * 4) as u64;
                if b.len() >= len {
                    b.truncate(len);
                } else {
                    b.resize(len, 0.0);
                }
                Ok(b)
            }
            None => {
                if let Some(i) = (0..self.free.len()).max_by_key(|&i| self.free[i].capacity()) {
                    let b = self.free.swap_remove(i);
                    self.bytes -= (b.capacity() * 4) as u64;
                }
                crate::zeroed(len, "an activation")
            }
        }
    }

    fn put(&mut self, buf: Vec<f32>) {
        if buf.capacity() >= 1 << 12 {
            self.bytes += (buf.capacity() * 4) as u64;
            self.free.push(buf);
        }
    }

    fn copy_of(&mut self, v: &Value) -> Result<Value, ExecError> {
        let mut data = self.get(v.data.len())?;
        data.copy_from_slice(&v.data);
        Ok(Value {
            data,
            shape: v.shape,
            vector: v.vector,
        })
    }
}

/// Planes below this many floats in all are processed on the calling thread.
const PARALLEL_FLOATS: usize = 1 << 14;

/// `f(channel, plane)` over every `(n, c)` plane of `data`, in parallel when it is large.
fn per_plane(
    data: &mut [f32],
    plane: usize,
    channels: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) {
    if plane == 0 {
        return;
    }
    if data.len() < PARALLEL_FLOATS {
        data.chunks_mut(plane)
            .enumerate()
            .for_each(|(i, p)| f(i % channels, p));
    } else {
        data.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(i, p)| f(i % channels, p));
    }
}

impl Executor {
    /// Compiles `graph`: weights widened to f32 (f16, bf16 and f64 sources), each BatchNorm
    /// folded (in f64) into the epilogue of the convolution before it, activations fused there.
    pub fn new(graph: &Graph, options: &ExecOptions) -> Result<Executor, ExecError> {
        Ok(Executor {
            plan: Plan::new(graph, options.logits)?,
        })
    }

    /// Channels the input must have.
    pub fn input_channels(&self) -> usize {
        self.plan.input_channels
    }

    /// BatchNorms folded into convolutions and activations fused into them.
    pub fn fusions(&self) -> (usize, usize) {
        (self.plan.folded_bn, self.plan.fused_act)
    }

    /// Number of kernels a run executes.
    pub fn steps(&self) -> usize {
        self.plan.steps.len()
    }

    /// Runs the graph on `input` (`[n, c, h, w]`, already preprocessed the way the graph's
    /// input expects).
    pub fn run(&self, input: Array) -> Result<RunOutput, ExecError> {
        self.run_capturing(input, &[])
    }

    /// Runs the graph and also returns the values of `capture` (graph nodes; the last node of
    /// a stage or block is always observable, see [`crate::stage_outputs`]).
    pub fn run_capturing(&self, input: Array, capture: &[NodeId]) -> Result<RunOutput, ExecError> {
        let plan = &self.plan;
        let [n, c, h, w] = match input.shape.as_slice() {
            &[n, c, h, w] => [n, c, h, w],
            other => {
                return Err(ExecError::Input(format!(
                    "expected an [n, c, h, w] input, found shape {other:?}"
                )));
            }
        };
        if c != plan.input_channels {
            return Err(ExecError::Input(format!(
                "the model takes {} channels, the input has {c} (shape [{n}, {c}, {h}, {w}])",
                plan.input_channels
            )));
        }
        let numel = [n, c, h, w]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if numel != Some(input.data.len()) || n == 0 || h == 0 || w == 0 {
            return Err(ExecError::Input(format!(
                "input shape [{n}, {c}, {h}, {w}] does not match its {} values",
                input.data.len()
            )));
        }
        let mut wanted: HashMap<ValueId, Vec<usize>> = HashMap::new();
        for (i, node) in capture.iter().enumerate() {
            let value = plan
                .node_value
                .get(node.index())
                .copied()
                .flatten()
                .ok_or(ExecError::NotObservable(node.index()))?;
            wanted.entry(value).or_default().push(i);
        }
        let mut captured: Vec<Option<Array>> = vec![None; capture.len()];
        let mut slots: Vec<Option<Value>> = vec![None; plan.values];
        let mut remaining = plan.uses.clone();
        remaining[plan.output] += 1;
        let mut live = 0u64;
        let mut peak = 0u64;
        let mut scratch: Vec<f32> = Vec::new();
        let mut pool = Pool::default();
        let input = Value {
            data: input.data,
            shape: [n, c, h, w],
            vector: false,
        };
        live += input.bytes();
        peak = peak.max(live);
        let keep = |value: ValueId, v: &Value, captured: &mut Vec<Option<Array>>| {
            if let Some(slots) = wanted.get(&value) {
                for &i in slots {
                    captured[i] = Some(v.clone().into_array());
                }
            }
        };
        keep(plan.input, &input, &mut captured);
        slots[plan.input] = Some(input);
        let profile = std::env::var_os("EFFNET_EXEC_PROFILE").is_some();
        for step in &plan.steps {
            let started = profile.then(std::time::Instant::now);
            // An input read by this step only (and not twice by it) may be overwritten.
            let owned = |v: ValueId| {
                remaining[v] == 1 && step.inputs.iter().filter(|&&x| x == v).count() == 1
            };
            let take = |slots: &mut Vec<Option<Value>>,
                        v: ValueId,
                        live: &mut u64,
                        pool: &mut Pool|
             -> Result<Value, ExecError> {
                if owned(v) {
                    let value = slots[v].take().expect("value computed before use");
                    *live -= value.bytes();
                    Ok(value)
                } else {
                    pool.copy_of(slots[v].as_ref().expect("value computed before use"))
                }
            };
            let out = match &step.kernel {
                Kernel::Affine { scale, offset } => {
                    let mut v = take(&mut slots, step.inputs[0], &mut live, &mut pool)?;
                    check_channels(&step.name, &v, scale.len().max(offset.len()), true)?;
                    let (plane, ch) = (v.plane(), v.shape[1]);
                    per_plane(&mut v.data, plane, ch, |c, p| {
                        let s = scale[if scale.len() == 1 { 0 } else { c }];
                        let o = offset[if offset.len() == 1 { 0 } else { c }];
                        act::affine(p, s, o)
                    });
                    v
                }
                Kernel::Normalize { mean, divisor } => {
                    let mut v = take(&mut slots, step.inputs[0], &mut live, &mut pool)?;
                    check_channels(&step.name, &v, mean.len(), false)?;
                    let (plane, ch) = (v.plane(), v.shape[1]);
                    per_plane(&mut v.data, plane, ch, |c, p| {
                        act::normalize(p, mean[c], divisor[c])
                    });
                    v
                }
                Kernel::Act(a) => {
                    let mut v = take(&mut slots, step.inputs[0], &mut live, &mut pool)?;
                    let (plane, ch) = (v.plane(), v.shape[1]);
                    per_plane(&mut v.data, plane, ch, |_, p| bias_act(p, 0.0, *a));
                    v
                }
                Kernel::Softmax => {
                    let mut v = take(&mut slots, step.inputs[0], &mut live, &mut pool)?;
                    softmax(&mut v);
                    v
                }
                Kernel::Flatten => {
                    let mut v = take(&mut slots, step.inputs[0], &mut live, &mut pool)?;
                    let [n, c, h, w] = v.shape;
                    v.shape = [n, c * h * w, 1, 1];
                    v.vector = true;
                    v
                }
                Kernel::Conv(cs) => {
                    let x = slots[step.inputs[0]].as_ref().expect("value computed");
                    let held = live + pool.bytes;
                    run_conv(&step.name, cs, x, &mut scratch, &mut pool, held, &mut peak)?
                }
                Kernel::GlobalPool { keep_dims } => {
                    let x = slots[step.inputs[0]].as_ref().expect("value computed");
                    global_pool(x, *keep_dims)
                }
                Kernel::Dense {
                    in_features,
                    out_features,
                    weight,
                    bias,
                } => {
                    let x = slots[step.inputs[0]].as_ref().expect("value computed");
                    dense(&step.name, x, *in_features, *out_features, weight, bias)?
                }
                Kernel::Mul | Kernel::Add => {
                    let (a, b) = (step.inputs[0], step.inputs[1]);
                    let (sa, sb) = (
                        slots[a].as_ref().expect("value computed").shape,
                        slots[b].as_ref().expect("value computed").shape,
                    );
                    let mul = matches!(step.kernel, Kernel::Mul);
                    // The full-size operand receives the result.
                    let (big, small) = if sa == sb {
                        if owned(b) && !owned(a) {
                            (b, a)
                        } else {
                            (a, b)
                        }
                    } else if mul && sb[2] * sb[3] == 1 && sb[..2] == sa[..2] {
                        (a, b)
                    } else if mul && sa[2] * sa[3] == 1 && sa[..2] == sb[..2] {
                        (b, a)
                    } else {
                        return Err(ExecError::Shape {
                            node: step.name.clone(),
                            message: format!("operands {sa:?} and {sb:?} do not broadcast"),
                        });
                    };
                    let mut v = take(&mut slots, big, &mut live, &mut pool)?;
                    let other = slots[small].as_ref().expect("value computed");
                    if v.shape == other.shape {
                        if mul {
                            elementwise(&mut v.data, &other.data, act::mul);
                        } else {
                            elementwise(&mut v.data, &other.data, act::add);
                        }
                    } else {
                        let gate = &other.data;
                        let plane = v.plane();
                        if v.data.len() < PARALLEL_FLOATS {
                            v.data
                                .chunks_mut(plane)
                                .enumerate()
                                .for_each(|(i, p)| act::scale(p, gate[i]));
                        } else {
                            v.data
                                .par_chunks_mut(plane)
                                .enumerate()
                                .for_each(|(i, p)| act::scale(p, gate[i]));
                        }
                    }
                    v
                }
            };
            live += out.bytes();
            peak = peak.max(live + pool.bytes + (scratch.capacity() * 4) as u64);
            for &v in &step.inputs {
                remaining[v] -= 1;
                if remaining[v] == 0 {
                    if let Some(value) = slots[v].take() {
                        live -= value.bytes();
                        pool.put(value.data);
                    }
                }
            }
            if let Some(t) = started {
                eprintln!(
                    "{:>9.3} ms  {:<40} {:?}",
                    t.elapsed().as_secs_f64() * 1e3,
                    step.name,
                    out.shape
                );
            }
            keep(step.output, &out, &mut captured);
            slots[step.output] = Some(out);
        }
        let output = slots[plan.output]
            .take()
            .expect("the output value was computed")
            .into_array();
        Ok(RunOutput {
            output,
            captured: captured
                .into_iter()
                .map(|a| a.expect("every captured value is computed"))
                .zip(capture)
                .map(|(a, &id)| (id, a))
                .collect(),
            peak_bytes: peak,
        })
    }
}

fn check_channels(name: &str, v: &Value, len: usize, broadcast: bool) -> Result<(), ExecError> {
    if v.shape[1] == len || (broadcast && len == 1) {
        Ok(())
    } else {
        Err(ExecError::Shape {
            node: name.to_owned(),
            message: format!(
                "{len} channel parameters for an input of {} channels",
                v.shape[1]
            ),
        })
    }
}

fn elementwise(a: &mut [f32], b: &[f32], f: fn(&mut [f32], &[f32])) {
    const CHUNK: usize = 1 << 14;
    if a.len() < 2 * CHUNK {
        f(a, b);
    } else {
        a.par_chunks_mut(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .for_each(|(x, y)| f(x, y));
    }
}

fn run_conv(
    name: &str,
    cs: &ConvStep,
    x: &Value,
    scratch: &mut Vec<f32>,
    pool: &mut Pool,
    held: u64,
    peak: &mut u64,
) -> Result<Value, ExecError> {
    let [n, c, h, w] = x.shape;
    if c != cs.in_channels || x.vector {
        return Err(ExecError::Shape {
            node: name.to_owned(),
            message: format!(
                "a convolution of {} input channels got shape {:?}",
                cs.in_channels, x.shape
            ),
        });
    }
    let resolved = cs
        .padding
        .resolve(name, [h, w], cs.kernel, cs.stride, cs.dilation)
        .map_err(ExecError::Ir)?;
    let [oh, ow] = resolved.output;
    let mut out = pool.get(crate::numel(
        &[n, cs.out_channels, oh, ow],
        "an activation",
    )?)?;
    *peak = (*peak).max(held + (out.len() * 4) as u64 + (scratch.capacity() * 4) as u64);
    let filter = Filter {
        weights: &cs.weight,
        scale: &cs.scale,
        shift: &cs.shift,
        act: cs.act,
    };
    if cs.depthwise {
        let g = DwGeometry {
            in_hw: [h, w],
            out_hw: [oh, ow],
            kernel: cs.kernel,
            stride: cs.stride,
            dilation: cs.dilation,
            pads: resolved.pads,
        };
        depthwise(&x.data, filter, c, &g, &mut out);
    } else {
        let g = ConvGeometry {
            in_channels: cs.in_channels,
            out_channels: cs.out_channels,
            groups: cs.groups,
            in_hw: [h, w],
            out_hw: [oh, ow],
            kernel: cs.kernel,
            stride: cs.stride,
            dilation: cs.dilation,
            pads: resolved.pads,
        };
        let need = g.scratch_len().saturating_sub(scratch.len());
        scratch
            .try_reserve_exact(need)
            .map_err(|_| ExecError::Memory {
                bytes: (g.scratch_len() as u64).saturating_mul(4),
                what: "a convolution's im2col buffer",
            })?;
        conv(&x.data, filter, n, &g, scratch, &mut out);
    }
    Ok(Value {
        data: out,
        shape: [n, cs.out_channels, oh, ow],
        vector: false,
    })
}

/// Mean over height and width, summed in f64.
fn global_pool(x: &Value, keep_dims: bool) -> Value {
    let [n, c, _, _] = x.shape;
    let plane = x.plane();
    let mean = |p: &[f32]| (act::sum_f64(p) / plane as f64) as f32;
    let data: Vec<f32> = if x.data.len() < PARALLEL_FLOATS {
        x.data.chunks(plane).map(mean).collect()
    } else {
        x.data.par_chunks(plane).map(mean).collect()
    };
    Value {
        data,
        shape: [n, c, 1, 1],
        vector: !keep_dims,
    }
}

/// `y = W · x + b` for every sample, as one GEMM `W (out × in) · Xᵀ (in × n)`.
fn dense(
    name: &str,
    x: &Value,
    in_features: usize,
    out_features: usize,
    weight: &[f32],
    bias: &[f32],
) -> Result<Value, ExecError> {
    let n = x.shape[0];
    if x.data.len() != n * in_features {
        return Err(ExecError::Shape {
            node: name.to_owned(),
            message: format!(
                "a dense layer of {in_features} inputs got shape {:?}",
                x.shape
            ),
        });
    }
    let len = crate::numel(&[n, out_features], "a dense layer's output")?;
    let mut yt = crate::zeroed(len, "a dense layer's output")?;
    let epilogue = |row: usize, data: &mut [f32]| bias_act(data, bias[row], Act::None);
    matmul(
        MatRef::new(weight, out_features, in_features),
        MatRef::new(&x.data, n, in_features).t(),
        &mut yt,
        n,
        &epilogue,
    );
    let mut data = crate::zeroed(len, "a dense layer's output")?;
    for o in 0..out_features {
        for s in 0..n {
            data[s * out_features + o] = yt[o * n + s];
        }
    }
    Ok(Value {
        data,
        shape: [n, out_features, 1, 1],
        vector: true,
    })
}

/// Softmax over channels at every position, in f64.
fn softmax(v: &mut Value) {
    let [n, c, _, _] = v.shape;
    let plane = v.plane();
    for s in 0..n {
        let base = s * c * plane;
        for p in 0..plane {
            let at = |ch: usize| base + ch * plane + p;
            let max = (0..c)
                .map(|ch| v.data[at(ch)])
                .fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f64> = (0..c)
                .map(|ch| (f64::from(v.data[at(ch)]) - f64::from(max)).exp())
                .collect();
            let sum: f64 = exps.iter().sum();
            for (ch, e) in exps.iter().enumerate() {
                v.data[at(ch)] = (e / sum) as f32;
            }
        }
    }
}
