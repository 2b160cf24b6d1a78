//! The tensor-bundle `.index` table and what it holds: table blocks and their checksums,
//! `BundleHeaderProto`/`BundleEntryProto` decoding, and a `TrackableObjectGraph` walked for
//! Keras layers — all in memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = effnet_tf::table::read(data) {
        for (_, value) in entries {
            let _ = effnet_tf::proto::BundleHeaderProto::decode(value);
            let _ = effnet_tf::proto::BundleEntryProto::decode(value);
        }
    }
    if let Ok(graph) = effnet_tf::proto::TrackableObjectGraph::decode(data) {
        let _ = effnet_tf::object_layers(&graph);
    }
});
