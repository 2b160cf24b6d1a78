//! TF1 name-based checkpoints: the model's variables, their moving averages where saved,
//! without optimizer slots and step counters.

use std::collections::BTreeMap;

use effnet_ir::Tensor;

/// A TF1 name-based checkpoint reduced to the model's variables.
#[derive(Debug, Default)]
pub struct NameBased {
    /// The model's tensors under their variable names.
    pub tensors: Vec<(String, Tensor)>,
    /// Whether the values are the `ExponentialMovingAverage` shadows.
    pub moving_averages: bool,
    /// Keys left out, with the reason.
    pub dropped: Vec<(String, String)>,
}

/// Optimizer slot suffixes of TF1 optimizers (`var/RMSProp`, `var/Adam_1`, `var/Momentum`).
const SLOT_SUFFIXES: [&str; 8] = [
    "RMSProp",
    "RMSProp_1",
    "Momentum",
    "Adam",
    "Adam_1",
    "Adagrad",
    "Ftrl",
    "Ftrl_1",
];

/// Keeps the model's variables of a name-based checkpoint: their `/ExponentialMovingAverage`
/// shadows where present (the values the release checkpoints are meant to be used with),
/// without optimizer slots and step counters.
pub fn name_based(tensors: Vec<(String, Tensor)>) -> NameBased {
    const EMA: &str = "/ExponentialMovingAverage";
    let averages: BTreeMap<String, Tensor> = tensors
        .iter()
        .filter_map(|(k, t)| Some((k.strip_suffix(EMA)?.to_owned(), t.clone())))
        .collect();
    let mut out = NameBased {
        moving_averages: !averages.is_empty(),
        ..NameBased::default()
    };
    for (key, tensor) in tensors {
        if key.ends_with(EMA) {
            continue;
        }
        let last = key.rsplit('/').next().unwrap_or(&key);
        if SLOT_SUFFIXES.contains(&last) {
            out.dropped.push((key, "an optimizer slot".into()));
        } else if matches!(
            key.as_str(),
            "global_step" | "step" | "save_counter" | "iterations"
        ) || key.ends_with("/global_step")
        {
            out.dropped.push((key, "a step counter".into()));
        } else if let Some(average) = averages.get(&key) {
            out.dropped.push((
                key.clone(),
                "replaced by its ExponentialMovingAverage".into(),
            ));
            out.tensors.push((key, average.clone()));
        } else {
            out.tensors.push((key, tensor));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_averages_replace_raw_values_and_slots_are_dropped() {
        let t = |v: f32| Tensor::from_f32(vec![1], &[v]).unwrap();
        let kept = name_based(vec![
            ("m/w".into(), t(1.0)),
            ("m/w/ExponentialMovingAverage".into(), t(2.0)),
            ("m/w/RMSProp".into(), t(3.0)),
            ("global_step".into(), t(4.0)),
        ]);
        assert!(kept.moving_averages);
        assert_eq!(kept.tensors.len(), 1);
        assert_eq!(kept.tensors[0].1.to_f32_vec().unwrap(), [2.0]);
        assert_eq!(kept.dropped.len(), 3);
    }
}
