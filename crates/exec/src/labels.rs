//! The 1000 ImageNet-1k class names, in class-index order (`data/imagenet_classes.txt`, from
//! the PyTorch Hub repository, github.com/pytorch/hub, `imagenet_classes.txt`).

/// The label file as shipped.
pub const IMAGENET_LABELS: &str = include_str!("../data/imagenet_classes.txt");

/// The 1000 labels, index = class.
pub fn imagenet_labels() -> Vec<&'static str> {
    IMAGENET_LABELS.lines().filter(|l| !l.is_empty()).collect()
}

/// The `k` largest scores with their indices, largest first (ties: lower index first).
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.into_iter().take(k).map(|i| (i, scores[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousand_labels_in_order() {
        let labels = imagenet_labels();
        assert_eq!(labels.len(), 1000);
        assert_eq!(labels[0], "tench");
        assert_eq!(labels[999], "toilet tissue");
        assert_eq!(
            top_k(&[0.1, 0.5, 0.2, 0.5], 3),
            vec![(1, 0.5), (3, 0.5), (2, 0.2)]
        );
    }
}
