//! Unwrapping the checkpoint dictionary people nest weights in: the top-level key holding the
//! model (`state_dict`, `model_ema`, …, or the one `--key` names) and the wrapper prefixes
//! (`module.`, `model.`) on every name.

use std::path::Path;

use effnet_ir::Checkpoint;
use effnet_naming::detect;

use crate::ImportError;

/// Keys people nest weights under, in the order they are preferred when several are present.
const PREFERRED_KEYS: [&str; 9] = [
    "state_dict",
    "model",
    "model_state_dict",
    "module",
    "net",
    "network",
    "state_dict_ema",
    "model_ema",
    "ema",
];

/// The model's tensors, the key they were taken from, the other keys holding tensors, and the
/// wrapper prefix stripped from every name.
pub(crate) struct Unwrapped {
    pub(crate) checkpoint: Checkpoint,
    pub(crate) key: Option<String>,
    pub(crate) other_keys: Vec<String>,
    pub(crate) prefix: Option<String>,
}

/// How many names the best scheme understands, once wrapper prefixes are stripped (linear in
/// the number of names: no checkpoint is copied).
fn score(mut names: Vec<&str>) -> usize {
    for wrapper in ["module.", "model.", "module."] {
        if !names.is_empty() && names.iter().all(|n| n.starts_with(wrapper)) {
            for n in &mut names {
                *n = &n[wrapper.len()..];
            }
        }
    }
    detect(&names).first().map_or(0, |(_, n)| *n)
}

/// Removes DataParallel's `module.` and Lightning's `model.` while every name has one.
fn strip_wrappers(mut checkpoint: Checkpoint) -> (Checkpoint, Option<String>) {
    let mut prefix = String::new();
    for wrapper in ["module", "model", "module"] {
        let dotted = format!("{wrapper}.");
        if !checkpoint.is_empty()
            && checkpoint
                .tensors
                .iter()
                .all(|(n, _)| n.starts_with(&dotted))
        {
            checkpoint = under(&checkpoint, wrapper);
            prefix.push_str(&dotted);
        }
    }
    (checkpoint, (!prefix.is_empty()).then_some(prefix))
}

/// The tensors under `prefix.`, with the prefix removed.
fn under(checkpoint: &Checkpoint, prefix: &str) -> Checkpoint {
    let dotted = format!("{prefix}.");
    Checkpoint {
        tensors: checkpoint
            .tensors
            .iter()
            .filter_map(|(n, t)| n.strip_prefix(&dotted).map(|s| (s.to_owned(), t.clone())))
            .collect(),
        metadata: checkpoint.metadata.clone(),
        layout: checkpoint.layout,
    }
}

/// Picks the nested dictionary holding the model and strips wrapper prefixes. Every pass is
/// linear in the number of tensors: names are grouped by their first component once, and
/// each group is scored once.
pub(crate) fn unwrap(
    path: &Path,
    checkpoint: Checkpoint,
    key: Option<&str>,
) -> Result<Unwrapped, ImportError> {
    let mut top: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<&str, Vec<&str>> = std::collections::HashMap::new();
    for (n, _) in &checkpoint.tensors {
        if let Some((first, rest)) = n.split_once('.') {
            match groups.entry(first) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    top.push(first.to_owned());
                    e.insert(vec![rest]);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().push(rest),
            }
        }
    }
    let best = match key {
        Some(_) => None,
        None => {
            let whole = score(checkpoint.tensors.iter().map(|(n, _)| n.as_str()).collect());
            // A group scores at most its size: groups are scored largest first, and those
            // that cannot beat the whole file or the best so far are skipped; groups with the
            // same names are scored once.
            // Ties go to the later key, as `max_by_key` over `top` would.
            let mut order: Vec<(usize, &String, Vec<&str>)> = top
                .iter()
                .enumerate()
                .map(|(i, t)| (i, t, groups.remove(t.as_str()).unwrap_or_default()))
                .collect();
            order.sort_by_key(|(_, _, names)| std::cmp::Reverse(names.len()));
            let mut known: std::collections::HashMap<Vec<&str>, usize> =
                std::collections::HashMap::new();
            let mut best: Option<(usize, &String, usize)> = None;
            let rank = |t: &str| {
                PREFERRED_KEYS
                    .iter()
                    .position(|p| *p == t)
                    .unwrap_or(PREFERRED_KEYS.len())
            };
            for (i, t, names) in order {
                let bound = names.len();
                if bound <= whole || best.is_some_and(|(_, _, s)| bound < s) {
                    continue;
                }
                let s = match known.get(&names) {
                    Some(&s) => s,
                    None => {
                        let s = score(names.clone());
                        known.insert(names, s);
                        s
                    }
                };
                let key = (s, std::cmp::Reverse(rank(t)), i);
                let better = match best {
                    None => s > whole,
                    Some((bi, b, bs)) => key > (bs, std::cmp::Reverse(rank(b)), bi),
                };
                if better {
                    best = Some((i, t, s));
                }
            }
            best.map(|(_, t, _)| t.clone())
        }
    };
    drop(groups);
    let (chosen, taken) = match key {
        Some(k) => {
            let sub = under(&checkpoint, k);
            if sub.is_empty() {
                const SHOWN: usize = 20;
                // Keys are the top-level names under which a model's weights sit, not the
                // first component of every tensor name (`features` of a plain state dict).
                let mut by_key: std::collections::HashMap<&str, Vec<&str>> =
                    std::collections::HashMap::new();
                for (n, _) in &checkpoint.tensors {
                    if let Some((first, rest)) = n.split_once('.') {
                        by_key.entry(first).or_default().push(rest);
                    }
                }
                let keys: Vec<&String> = top
                    .iter()
                    .filter(|t| {
                        by_key
                            .remove(t.as_str())
                            .is_some_and(|names| score(names) > 0)
                    })
                    .collect();
                if keys.is_empty() {
                    return Err(ImportError::NoSuchKey {
                        path: path.to_owned(),
                        key: k.to_owned(),
                        available: "the file holds one model's weights, not a dictionary of them: leave out --key".into(),
                    });
                }
                let mut available = "keys holding a model: ".to_owned();
                available += &keys
                    .iter()
                    .take(SHOWN)
                    .map(|k| effnet_io::escape(k).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                if keys.len() > SHOWN {
                    available.push_str(&format!(" and {} more", keys.len() - SHOWN));
                }
                return Err(ImportError::NoSuchKey {
                    path: path.to_owned(),
                    key: k.to_owned(),
                    available,
                });
            }
            (sub, Some(k.to_owned()))
        }
        None => match best {
            Some(t) => (under(&checkpoint, &t), Some(t)),
            None => (checkpoint, None),
        },
    };
    let other_keys = match &taken {
        Some(t) => top.iter().filter(|k| *k != t).cloned().collect(),
        None => Vec::new(),
    };
    let (checkpoint, prefix) = strip_wrappers(chosen);
    Ok(Unwrapped {
        checkpoint,
        key: taken,
        other_keys,
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use effnet_ir::{DType, Tensor};

    fn checkpoint(names: impl IntoIterator<Item = String>) -> Checkpoint {
        let t = Tensor::shape_only(DType::F32, vec![1]).unwrap();
        Checkpoint {
            tensors: names.into_iter().map(|n| (n, t.clone())).collect(),
            ..Checkpoint::default()
        }
    }

    const TORCHVISION: [&str; 4] = [
        "features.0.0.weight",
        "features.0.1.weight",
        "features.1.0.block.0.0.weight",
        "classifier.1.weight",
    ];

    #[test]
    fn the_preferred_key_wins_a_tie_and_wrappers_are_stripped() {
        let names = ["model_ema", "state_dict", "other"]
            .iter()
            .flat_map(|k| TORCHVISION.iter().map(move |n| format!("{k}.module.{n}")))
            .chain(["epoch".to_owned()]);
        let u = unwrap(Path::new("x.pth"), checkpoint(names), None).unwrap();
        assert_eq!(u.key.as_deref(), Some("state_dict"));
        assert_eq!(u.prefix.as_deref(), Some("module."));
        assert_eq!(u.other_keys, ["model_ema", "other"]);
        assert_eq!(u.checkpoint.tensors[0].0, "features.0.0.weight");
        // A larger group beats the preferred key.
        let names = TORCHVISION
            .iter()
            .map(|n| format!("ema.{n}"))
            .chain(TORCHVISION[..2].iter().map(|n| format!("model.{n}")));
        let u = unwrap(Path::new("x.pth"), checkpoint(names), None).unwrap();
        assert_eq!(u.key.as_deref(), Some("ema"));
    }

    #[test]
    fn a_hundred_thousand_top_level_keys_unwrap_in_linear_time() {
        let n = 100_000;
        let names = (0..n).map(|i| format!("k{i}.w{i}"));
        let start = std::time::Instant::now();
        let u = unwrap(Path::new("x.pth"), checkpoint(names), None).unwrap();
        assert_eq!(u.checkpoint.len(), n);
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
        // None of these prefixes holds a model: the error says so, in linear time too.
        let names = (0..n).map(|i| format!("k{i}.w{i}"));
        let start = std::time::Instant::now();
        let err = unwrap(Path::new("x.pth"), checkpoint(names), Some("nope"))
            .err()
            .unwrap()
            .to_string();
        assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
        assert!(err.contains("leave out --key"), "{err}");
        // 100,000 keys that each hold a model are listed 20 at a time.
        let names = (0..n).flat_map(|i| TORCHVISION.iter().map(move |t| format!("k{i}.{t}")));
        let err = unwrap(
            Path::new("x.pth"),
            checkpoint(names.take(20_000 * TORCHVISION.len())),
            Some("nope"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("and 19980 more"), "{err}");
    }
}
