//! Absurd numbers on the command line: refused with a message, never wrapped or a panic.

use super::run_limited;

#[test]
fn absurd_resolutions_and_batches_are_refused() {
    for args in [
        vec!["cost", "--variant", "b0", "--resolution", "4294967295"],
        vec!["cost", "--variant", "b0", "--resolution", "0"],
        vec!["cost", "--variant", "b0", "--batch", "18446744073709551615"],
        vec!["spec", "b0", "--resolution", "65537"],
    ] {
        let outcome = run_limited(&args);
        assert_eq!(outcome.code, Some(2), "{args:?}: {outcome:?}");
        assert!(outcome.stderr.contains("1 to"), "{}", outcome.stderr);
    }
    // In range for the parser, too large to count: refused, not wrapped.
    let outcome = run_limited(&[
        "cost",
        "--variant",
        "b7",
        "--resolution",
        "65536",
        "--batch",
        "1048576",
    ]);
    assert_eq!(outcome.code, Some(2), "{outcome:?}");
    assert!(
        outcome.stderr.contains("too large to count"),
        "{}",
        outcome.stderr
    );
}
