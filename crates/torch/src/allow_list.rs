//! The globals a checkpoint's pickle may name: the allow-list the scanner and the machine
//! both check.

/// Classes of the libraries whose modules a full-model file names: looked up, never called.
const MODULE_PREFIXES: [&str; 7] = [
    "torch.nn.modules.",
    "torchvision.models.",
    "torchvision.ops.",
    "timm.models.",
    "timm.layers.",
    "efficientnet_pytorch.",
    "__torch__.",
];

/// Globals a state_dict, a checkpoint dictionary or a TorchScript archive needs.
const ALLOWED: [&str; 19] = [
    "collections.OrderedDict",
    "__builtin__.set",
    "builtins.set",
    "__builtin__.frozenset",
    "builtins.frozenset",
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch.device",
    "argparse.Namespace",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
    "torch.jit._pickle.build_intlist",
    "torch.jit._pickle.build_doublelist",
    "torch.jit._pickle.build_boollist",
    "torch.jit._pickle.build_tensorlist",
    "torch.jit._pickle.restore_type_tag",
];

/// Whether `global` (`module.name`) may appear in a checkpoint.
pub fn is_allowed(module: &str, name: &str) -> bool {
    let full = format!("{module}.{name}");
    if ALLOWED.contains(&full.as_str()) {
        return true;
    }
    // Storage types: torch.FloatStorage, torch.HalfStorage, …
    if module == "torch" && name.ends_with("Storage") && is_identifier(name) {
        return true;
    }
    // A class of a model library: one CamelCase identifier, in a known module (which rules out
    // module aliases such as `torch.nn.modules.conv.F`).
    let class_like = is_identifier(name)
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().any(|c| c.is_ascii_lowercase());
    class_like
        && module.split('.').all(is_identifier)
        && MODULE_PREFIXES
            .iter()
            .any(|p| format!("{module}.").starts_with(p))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        assert!(is_allowed("collections", "OrderedDict"));
        assert!(is_allowed("torch", "FloatStorage"));
        assert!(is_allowed("torch._utils", "_rebuild_tensor_v2"));
        assert!(is_allowed("torch.nn.modules.conv", "Conv2d"));
        assert!(is_allowed("timm.layers.conv2d_same", "Conv2dSame"));
        assert!(!is_allowed("posix", "system"));
        assert!(!is_allowed("os", "system"));
        assert!(!is_allowed("builtins", "eval"));
        assert!(!is_allowed("builtins", "getattr"));
        assert!(!is_allowed("importlib", "import_module"));
        assert!(!is_allowed("subprocess", "Popen"));
        assert!(!is_allowed("torch.nn.modules.module", "torch.load"));
        assert!(!is_allowed("torch.nn.modules.conv", "F"));
        assert!(!is_allowed("torch", "load"));
    }
}
