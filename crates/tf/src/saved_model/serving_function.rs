//! The serving function of a SavedModel without Keras metadata: the ops it runs, each bound to
//! the variable it reads (convolution strides by kernel), and the input resolution.

use std::collections::{BTreeMap, HashMap, HashSet};

use effnet_io::Budget;
use prost::Message;

use super::{FunctionDef, MetaGraphDef, SavedModelProto, SavedObjectGraph};

/// What a serving function computes, read from its function graph with every op bound to the
/// variable it reads.
#[derive(Clone, Debug, Default)]
pub struct FunctionFacts {
    /// The signature's concrete function.
    pub function: String,
    /// The stride of each convolution, by the name of the kernel variable it reads.
    pub conv_strides: BTreeMap<String, usize>,
    /// How often each op type occurs in the functions the signature runs (each function
    /// counted once per distinct binding of variables to its arguments).
    pub ops: BTreeMap<String, usize>,
    /// The input height, when the signature fixes it (NHWC).
    pub resolution: Option<usize>,
}

/// The ops an EfficientNet's serving function is made of (Keras 3 and tf-keras traces,
/// decomposed or fused BatchNorm, the preprocessing arithmetic).
const KNOWN_OPS: [&str; 36] = [
    "Add",
    "AddV2",
    "BiasAdd",
    "Cast",
    "Const",
    "Conv2D",
    "DepthwiseConv2dNative",
    "ExpandDims",
    "FusedBatchNormV3",
    "Identity",
    "IdentityN",
    "MatMul",
    "Max",
    "Maximum",
    "Mean",
    "Mul",
    "NoOp",
    "Pack",
    "Pad",
    "PartitionedCall",
    "Placeholder",
    "ReadVariableOp",
    "RealDiv",
    "Relu",
    "Relu6",
    "Reshape",
    "Rsqrt",
    "Shape",
    "Sigmoid",
    "Softmax",
    "Sqrt",
    "Squeeze",
    "StatefulPartitionedCall",
    "StridedSlice",
    "Sub",
    "Transpose",
];

/// What the serving function of a `saved_model.pb` (its bytes) computes; `Ok(None)` for a
/// SavedModel without an object graph (TF1). Errors are messages about the protobuf.
pub fn serving_facts(saved_model_pb: &[u8]) -> Result<Option<FunctionFacts>, String> {
    let proto = SavedModelProto::decode(saved_model_pb)
        .map_err(|e| format!("not a SavedModel protobuf: {e}"))?;
    let Some(meta) = proto
        .meta_graphs
        .iter()
        .find(|m| m.object_graph_def.is_some())
    else {
        return Ok(None);
    };
    let saved = meta.object_graph_def.as_ref().expect("found with one");
    let budget = Budget::for_input(saved_model_pb.len() as u64);
    function_facts(meta, saved, &budget).map(Some)
}

/// The serving signature's concrete function and the node ids it captures, in argument order.
fn serving_function(saved: &SavedObjectGraph) -> Option<(String, Vec<i32>)> {
    let node = |id: i32| usize::try_from(id).ok().and_then(|i| saved.nodes.get(i));
    let signatures = saved
        .nodes
        .first()?
        .children
        .iter()
        .find(|c| c.local_name == "signatures")
        .and_then(|c| node(c.node_id))?;
    let chosen = signatures
        .children
        .iter()
        .find(|c| c.local_name == "serving_default")
        .or_else(|| signatures.children.first())?;
    let name = node(chosen.node_id)?
        .bare_concrete_function
        .as_ref()?
        .concrete_function_name
        .clone();
    let bound = saved.concrete_functions.get(&name)?.bound_inputs.clone();
    Some((name, bound))
}

/// Reads the serving function: every op must be one an EfficientNet is made of; convolution
/// strides are bound to the kernel variables they read, through `ReadVariableOp`s, calls and
/// the signature's captures.
pub(super) fn function_facts(
    meta: &MetaGraphDef,
    saved: &SavedObjectGraph,
    budget: &Budget,
) -> Result<FunctionFacts, String> {
    let Some((name, bound)) = serving_function(saved) else {
        return Err("no serving signature to read the model from".into());
    };
    let functions: &[FunctionDef] = meta
        .graph_def
        .as_ref()
        .and_then(|g| g.library.as_ref())
        .map(|l| l.function.as_slice())
        .unwrap_or_default();
    budget
        .work(functions.len() as u64, || {
            "indexing the function library".into()
        })
        .map_err(|e| e.to_string())?;
    let library: HashMap<&str, usize> = functions
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((f.signature.as_ref()?.name.as_str(), i)))
        .collect();
    let &serving = library
        .get(name.as_str())
        .ok_or_else(|| format!("the serving function `{name}` is not in the function library"))?;
    let args = functions[serving]
        .signature
        .as_ref()
        .map(|s| s.input_arg.as_slice())
        .unwrap_or_default();
    let first_capture = args.len().checked_sub(bound.len()).ok_or_else(|| {
        format!("the serving function `{name}` has fewer arguments than captures")
    })?;
    // Variables by id: the serving function's captured arguments are bound to them.
    let mut variables: Vec<&str> = Vec::new();
    let mut binding = vec![UNBOUND; args.len()];
    for (k, &id) in bound.iter().enumerate() {
        let var = usize::try_from(id)
            .ok()
            .and_then(|i| saved.nodes.get(i))
            .and_then(|n| n.variable.as_ref());
        if let Some(var) = var {
            binding[first_capture + k] = variables.len() as u32;
            variables.push(var.name.as_str());
        }
    }
    let mut facts = FunctionFacts {
        function: name.clone(),
        ..FunctionFacts::default()
    };
    let mut walker = Walker {
        functions,
        library: &library,
        prepared: Vec::new(),
        variables: &variables,
        facts: &mut facts,
        nodes: MAX_WALKED_NODES,
        budget,
        walked: HashSet::new(),
    };
    walker.prepared.resize_with(functions.len(), || None);
    walker.walk(serving, &binding, 0)?;
    facts.resolution = meta
        .signature_def
        .get("serving_default")
        .or_else(|| meta.signature_def.values().next())
        .and_then(|s| s.inputs.values().next())
        .and_then(|i| i.tensor_shape.as_ref())
        .and_then(|s| match s.dim.as_slice() {
            [_, h, w, c] if h.size > 0 && h.size == w.size && c.size == 3 => {
                usize::try_from(h.size).ok()
            }
            _ => None,
        });
    Ok(facts)
}

/// The node an input names (`conv/ReadVariableOp:value:0` → `conv/ReadVariableOp`).
fn input_node(input: &str) -> &str {
    input.split(':').next().unwrap_or(input)
}

/// The most nodes a serving function's calls may make effnet visit (a B7 has a few thousand;
/// functions that call themselves several times would otherwise take exponential time).
const MAX_WALKED_NODES: usize = 500_000;

/// The largest convolution stride a serving function may state (EfficientNets use 1 and 2).
pub const MAX_STRIDE: i64 = 16;

/// A variable id for an argument or node output that is no variable.
const UNBOUND: u32 = u32::MAX;

/// Where a node input comes from, resolved once per function.
#[derive(Clone, Copy)]
enum Source {
    /// The function's argument at this position.
    Param(usize),
    /// The output of the node at this position.
    Node(usize),
    /// Anything else (a constant, a node of another name).
    Other,
}

/// A function's nodes with their data inputs resolved to positions, and its callees.
struct Prepared {
    /// Per node: its data inputs (control inputs `^x` left out).
    inputs: Vec<Vec<Source>>,
    /// Per node: the function it calls, by position in the library.
    callee: Vec<Option<usize>>,
}

/// Walks a serving function and the functions it calls. Calls nest at most 32 deep (the
/// recursion is bounded by that, not by the input). Each function's inputs are resolved to
/// positions once (charged as work: the bytes of every input name); a call binds its callee's
/// arguments by position to variable ids, and a function is walked once per distinct binding
/// (strides and the op types present are the same again), so a call graph that fans out costs
/// its distinct calls, not its paths. Every node visited, argument bound and distinct call
/// kept is charged to the input's budget.
struct Walker<'a, 'f> {
    functions: &'f [FunctionDef],
    library: &'a HashMap<&'f str, usize>,
    prepared: Vec<Option<std::rc::Rc<Prepared>>>,
    variables: &'a [&'f str],
    facts: &'a mut FunctionFacts,
    nodes: usize,
    budget: &'a Budget,
    /// The calls already walked: (function, variable id bound to each argument).
    walked: HashSet<(usize, Vec<u32>)>,
}

impl Walker<'_, '_> {
    fn name(&self, function: usize) -> &str {
        self.functions[function]
            .signature
            .as_ref()
            .map(|s| s.name.as_str())
            .unwrap_or("?")
    }

    /// Resolves `function`'s inputs once.
    fn prepare(&mut self, function: usize) -> Result<std::rc::Rc<Prepared>, String> {
        if let Some(p) = &self.prepared[function] {
            return Ok(p.clone());
        }
        let def = &self.functions[function];
        let fname = self.name(function).to_owned();
        let params: HashMap<&str, usize> = def
            .signature
            .as_ref()
            .map(|s| {
                s.input_arg
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.name.as_str(), i))
                    .collect()
            })
            .unwrap_or_default();
        let mut node_at: HashMap<&str, usize> = HashMap::new();
        for (i, n) in def.node_def.iter().enumerate() {
            node_at.entry(n.name.as_str()).or_insert(i);
        }
        let mut inputs = Vec::with_capacity(def.node_def.len());
        let mut callee = Vec::with_capacity(def.node_def.len());
        for node in &def.node_def {
            let bytes: u64 = node.input.iter().map(|i| i.len() as u64 + 1).sum();
            self.budget
                .work(bytes + 1, || format!("resolving the inputs of `{fname}`"))
                .map_err(|e| e.to_string())?;
            self.budget
                .memory(16 * node.input.len() as u64 + 64, || {
                    format!("resolving the inputs of `{fname}`")
                })
                .map_err(|e| e.to_string())?;
            inputs.push(
                node.input
                    .iter()
                    .filter(|i| !i.starts_with('^'))
                    .map(|i| {
                        let n = input_node(i);
                        match (node_at.get(n), params.get(n)) {
                            (Some(&k), _) => Source::Node(k),
                            (None, Some(&p)) => Source::Param(p),
                            (None, None) => Source::Other,
                        }
                    })
                    .collect(),
            );
            let called = match node.op.as_str() {
                "StatefulPartitionedCall" | "PartitionedCall" => {
                    match node.attr.get("f").and_then(|a| a.func.as_ref()) {
                        Some(f) => Some(*self.library.get(f.name.as_str()).ok_or_else(|| {
                            format!(
                                "function `{fname}` calls `{}`, which is not in the library",
                                f.name
                            )
                        })?),
                        None => None,
                    }
                }
                _ => None,
            };
            callee.push(called);
        }
        let prepared = std::rc::Rc::new(Prepared { inputs, callee });
        self.prepared[function] = Some(prepared.clone());
        Ok(prepared)
    }

    fn walk(&mut self, function: usize, binding: &[u32], depth: usize) -> Result<(), String> {
        let fname = self.name(function).to_owned();
        if depth > 32 {
            return Err(format!("calls nested deeper than 32 levels at `{fname}`"));
        }
        let prepared = self.prepare(function)?;
        let def = &self.functions[function];
        // The variable each node's output reads, by node position.
        let mut reads = vec![UNBOUND; def.node_def.len()];
        let resolve = |reads: &[u32], source: Source| match source {
            Source::Param(p) => binding.get(p).copied().unwrap_or(UNBOUND),
            Source::Node(n) => reads[n],
            Source::Other => UNBOUND,
        };
        for (i, node) in def.node_def.iter().enumerate() {
            self.nodes = self.nodes.checked_sub(1).ok_or_else(|| {
                format!(
                    "the serving function calls more than {MAX_WALKED_NODES} nodes (at `{fname}`)"
                )
            })?;
            self.budget
                .work(1 + node.input.len() as u64, || {
                    format!("walking the serving function's calls (at `{fname}`)")
                })
                .map_err(|e| e.to_string())?;
            if !KNOWN_OPS.contains(&node.op.as_str()) {
                return Err(format!(
                    "op `{}` (node `{}`) in function `{fname}` is not part of an EfficientNet effnet understands",
                    node.op, node.name
                ));
            }
            *self.facts.ops.entry(node.op.clone()).or_insert(0) += 1;
            let inputs = &prepared.inputs[i];
            match node.op.as_str() {
                "ReadVariableOp" | "Identity" => {
                    if let Some(&source) = inputs.first() {
                        reads[i] = resolve(&reads, source);
                    }
                }
                "StatefulPartitionedCall" | "PartitionedCall" => {
                    let Some(callee) = prepared.callee[i] else {
                        continue;
                    };
                    let params = self.functions[callee]
                        .signature
                        .as_ref()
                        .map_or(0, |s| s.input_arg.len());
                    // Binding the arguments is work too: a call with 1,000 captured
                    // arguments costs 1,000 steps, however often it is made.
                    self.budget
                        .work(params as u64, || {
                            format!("binding the arguments of `{}`", self.name(callee))
                        })
                        .map_err(|e| e.to_string())?;
                    let mut bound = vec![UNBOUND; params];
                    for (slot, &source) in bound.iter_mut().zip(inputs) {
                        *slot = resolve(&reads, source);
                    }
                    let key_bytes = 4 * params as u64 + 64;
                    self.budget
                        .memory(key_bytes, || "the calls of the serving function".into())
                        .map_err(|e| e.to_string())?;
                    if !self.walked.insert((callee, bound.clone())) {
                        self.budget.release(key_bytes);
                        continue;
                    }
                    self.walk(callee, &bound, depth + 1)?;
                }
                "Conv2D" | "DepthwiseConv2dNative" => {
                    let stride = match node
                        .attr
                        .get("strides")
                        .and_then(|a| a.list.as_ref())
                        .map(|l| l.i.as_slice())
                    {
                        None => 1,
                        Some([_, h, w, _]) if h == w && (1..=MAX_STRIDE).contains(h) => *h as usize,
                        Some(other) => {
                            return Err(format!(
                                "node `{}` in function `{fname}` has strides {other:?}; effnet reads square strides of 1 to {MAX_STRIDE}",
                                node.name
                            ));
                        }
                    };
                    let kernel = inputs
                        .get(1)
                        .map_or(UNBOUND, |&source| resolve(&reads, source));
                    if let Some(var) = self.variables.get(kernel as usize) {
                        self.facts.conv_strides.insert((*var).to_owned(), stride);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ObjectReference;
    use crate::saved_model::*;

    /// A SavedModel whose serving function `f0` captures `args` variables and calls `f1`
    /// twice, which calls `f2` twice, … down to `f30` (2^30 paths through 31 functions, each
    /// level within the depth limit), every call passing all its arguments on; `permute`
    /// reorders them so that every path binds them differently.
    fn fan_out(args: usize, permute: bool) -> Vec<u8> {
        let names: Vec<String> = (0..args).map(|a| format!("a{a}")).collect();
        // Permuted by a swap in one call and a rotation in the other, the bindings along the
        // paths are all different (the two generate every permutation).
        let call = |name: &str, callee: String, how: u8| NodeDef {
            name: name.into(),
            op: "StatefulPartitionedCall".into(),
            input: (0..args)
                .map(|a| match how {
                    1 => names[a ^ usize::from(a < 2)].clone(),
                    2 => names[(a + 1) % args].clone(),
                    _ => names[a].clone(),
                })
                .collect(),
            attr: HashMap::from([(
                "f".to_owned(),
                AttrValue {
                    func: Some(NameAttrList { name: callee }),
                    ..AttrValue::default()
                },
            )]),
        };
        let functions: Vec<FunctionDef> = (0..31)
            .map(|i| FunctionDef {
                signature: Some(OpDef {
                    name: format!("f{i}"),
                    input_arg: names.iter().map(|n| ArgDef { name: n.clone() }).collect(),
                }),
                node_def: if i < 30 {
                    vec![
                        call("a", format!("f{}", i + 1), u8::from(permute)),
                        call("b", format!("f{}", i + 1), 2 * u8::from(permute)),
                    ]
                } else {
                    Vec::new()
                },
            })
            .collect();
        let reference = |id: i32, name: &str| ObjectReference {
            node_id: id,
            local_name: name.into(),
        };
        let mut nodes = vec![
            SavedObject {
                children: vec![reference(1, "signatures")],
                ..SavedObject::default()
            },
            SavedObject {
                children: vec![reference(2, "serving_default")],
                ..SavedObject::default()
            },
            SavedObject {
                bare_concrete_function: Some(SavedBareConcreteFunction {
                    concrete_function_name: "f0".into(),
                }),
                ..SavedObject::default()
            },
        ];
        nodes.extend((0..args).map(|a| SavedObject {
            variable: Some(SavedVariable {
                name: format!("v{a}"),
            }),
            ..SavedObject::default()
        }));
        let saved = SavedObjectGraph {
            nodes,
            concrete_functions: HashMap::from([(
                "f0".to_owned(),
                SavedConcreteFunction {
                    bound_inputs: (3..3 + args as i32).collect(),
                },
            )]),
        };
        let meta = MetaGraphDef {
            graph_def: Some(GraphDef {
                library: Some(FunctionDefLibrary {
                    function: functions,
                }),
            }),
            signature_def: HashMap::new(),
            object_graph_def: Some(saved),
        };
        SavedModelProto {
            meta_graphs: vec![meta],
        }
        .encode_to_vec()
    }

    #[test]
    fn call_fan_out_costs_its_distinct_calls() {
        // 2^30 paths, 1,000 captured arguments per call: over 60 s before; each function is
        // now walked once per distinct binding.
        let start = std::time::Instant::now();
        let facts = serving_facts(&fan_out(1000, false)).unwrap().unwrap();
        assert_eq!(facts.ops["StatefulPartitionedCall"], 60);
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn call_fan_out_with_distinct_bindings_ends_within_the_budget() {
        // Every path binds the arguments differently: the budget (work for every argument
        // bound, memory for every distinct call) ends it.
        let start = std::time::Instant::now();
        let error = serving_facts(&fan_out(1000, true)).unwrap_err();
        assert!(
            error.contains("memory") || error.contains("work") || error.contains("more than"),
            "{error}"
        );
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }
}
