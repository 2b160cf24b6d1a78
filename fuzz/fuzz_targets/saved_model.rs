//! A `saved_model.pb`: the SavedModel protobuf, its object graph and the serving function read
//! op by op (calls followed, variables bound) — in memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = effnet_tf::saved_model::serving_facts(data);
});
