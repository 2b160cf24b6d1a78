//! Hostile TensorFlow checkpoints, state files and SavedModels, made here at test time: tensor
//! bundles are written byte by byte (LevelDB table, masked crc32c, hand-encoded protobufs) so
//! that every checksum passes and only the hostile part is wrong.

use std::path::{Path, PathBuf};

use super::{
    file, fixture, listing, pb_bytes, pb_varint, refused, refused_by_inspect_and_cost, scratch,
    varint,
};

/// crc32c (Castagnoli), bit by bit.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn masked(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn pb_fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    varint(out, u64::from(field << 3 | 5));
    out.extend_from_slice(&v.to_le_bytes());
}

/// A block of `(shared, unshared key bytes, value)` entries, with its restart array.
fn block(entries: &[(usize, &[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (shared, unshared, value) in entries {
        varint(&mut out, *shared as u64);
        varint(&mut out, unshared.len() as u64);
        varint(&mut out, value.len() as u64);
        out.extend_from_slice(unshared);
        out.extend_from_slice(value);
    }
    out.extend(0u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    out
}

/// A table: one data block, an index block pointing at it, an empty meta-index and the footer.
fn table(data_block: &[u8]) -> Vec<u8> {
    let mut file = Vec::new();
    let put = |file: &mut Vec<u8>, contents: &[u8]| -> (u64, u64) {
        let offset = file.len() as u64;
        file.extend_from_slice(contents);
        let mut typed = contents.to_vec();
        typed.push(0);
        file.push(0);
        file.extend(masked(crc32c(&typed)).to_le_bytes());
        (offset, contents.len() as u64)
    };
    let (data_offset, data_size) = put(&mut file, data_block);
    let mut handle = Vec::new();
    varint(&mut handle, data_offset);
    varint(&mut handle, data_size);
    let (meta_offset, meta_size) = put(&mut file, &block(&[]));
    let (index_offset, index_size) = put(&mut file, &block(&[(0, b"\xff", &handle)]));
    let mut footer = Vec::new();
    for v in [meta_offset, meta_size, index_offset, index_size] {
        varint(&mut footer, v);
    }
    footer.resize(40, 0);
    footer.extend(0xdb47_7524_8b80_fb57u64.to_le_bytes());
    file.extend(footer);
    file
}

/// The bundle header: one shard, little-endian.
fn header() -> Vec<u8> {
    let mut h = Vec::new();
    pb_varint(&mut h, 1, 1);
    h
}

/// A `BundleEntryProto`.
fn entry(
    dtype: u64,
    dims: &[u64],
    offset: u64,
    size: u64,
    crc: u32,
    slices: &[Vec<u8>],
) -> Vec<u8> {
    let mut shape = Vec::new();
    for &d in dims {
        let mut dim = Vec::new();
        pb_varint(&mut dim, 1, d);
        pb_bytes(&mut shape, 2, &dim);
    }
    let mut e = Vec::new();
    pb_varint(&mut e, 1, dtype);
    pb_bytes(&mut e, 2, &shape);
    pb_varint(&mut e, 4, offset);
    pb_varint(&mut e, 5, size);
    pb_fixed32(&mut e, 6, crc);
    for s in slices {
        pb_bytes(&mut e, 7, s);
    }
    e
}

/// Writes `dir/ckpt.index` (with `data_block`) and `dir/ckpt.data-00000-of-00001`.
fn checkpoint(dir: &Path, data_block: &[u8], shard: &[u8]) -> PathBuf {
    file(dir, "ckpt.index", &table(data_block));
    file(dir, "ckpt.data-00000-of-00001", shard);
    dir.join("ckpt.index")
}

#[test]
fn prefix_compressed_keys_expanding_to_gigabytes_are_refused() {
    // 20,000 entries, each sharing its whole predecessor's key and adding 30 bytes: a 700 KB
    // index whose keys take 6 GB when each is copied in full.
    let mut keys: Vec<(usize, Vec<u8>)> = Vec::new();
    for i in 0..20_000usize {
        keys.push((i * 30, vec![b'a' + (i % 26) as u8; 30]));
    }
    let value = entry(1, &[1], 0, 4, masked(crc32c(&[0; 4])), &[]);
    let header = header();
    let mut entries: Vec<(usize, &[u8], &[u8])> = vec![(0, b"", &header)];
    entries.extend(
        keys.iter()
            .map(|(s, k)| (*s, k.as_slice(), value.as_slice())),
    );
    let dir = scratch();
    let index = checkpoint(dir.path(), &block(&entries), &[0; 4]);
    assert!(std::fs::metadata(&index).unwrap().len() < 1 << 20);
    let line = refused(&["inspect", index.to_str().unwrap()], &index);
    assert!(line.contains("memory"), "{line}");
}

/// A slice key: a zero byte, the OrderedCode-escaped name, `\x00\x01`, then (unread) extents.
fn slice_key(name: &str, n: u8) -> Vec<u8> {
    let mut k = vec![0u8];
    k.extend_from_slice(name.as_bytes());
    k.extend_from_slice(&[0, 1, n]);
    k
}

#[test]
fn a_sliced_tensor_claiming_16_gib_is_refused_before_allocating() {
    // `w` is 65,536 × 65,536 floats (16 GiB) stored as one 1×1 slice: the slices were
    // assembled into a 16 GiB buffer before their coverage was checked.
    let mut extent = Vec::new();
    for _ in 0..2 {
        let mut e = Vec::new();
        pb_varint(&mut e, 1, 0);
        pb_varint(&mut e, 2, 1);
        pb_bytes(&mut extent, 1, &e);
    }
    let whole = entry(1, &[65_536, 65_536], 0, 0, 0, &[extent]);
    let piece = entry(1, &[1, 1], 0, 4, masked(crc32c(&[0; 4])), &[]);
    let header = header();
    let key = slice_key("w", 0);
    let entries: Vec<(usize, &[u8], &[u8])> =
        vec![(0, b"", &header), (0, &key, &piece), (0, b"w", &whole)];
    let dir = scratch();
    let index = checkpoint(dir.path(), &block(&entries), &[0; 4]);
    let line = refused(&["inspect", index.to_str().unwrap()], &index);
    assert!(line.contains("cover"), "{line}");
}

#[test]
fn a_60000_node_object_graph_chain_is_read_in_linear_memory() {
    // Node i tracks node i + 1 under a 200-byte name; the last node is a model with one
    // weighted layer. A path per node took 60,000² × 100 bytes; now one path is built. The
    // layer has no variables, so the file is refused after the graph is read.
    let n = 60_000usize;
    let name = vec![b'n'; 200];
    let mut graph = Vec::new();
    for i in 0..n {
        let mut node = Vec::new();
        let mut child = Vec::new();
        let (id, local): (u64, &[u8]) = if i + 1 < n {
            ((i + 1) as u64, &name)
        } else {
            (n as u64, b"layer_with_weights-0")
        };
        pb_varint(&mut child, 1, id);
        pb_bytes(&mut child, 2, local);
        pb_bytes(&mut node, 1, &child);
        pb_bytes(&mut graph, 1, &node);
    }
    pb_bytes(&mut graph, 1, &[]);
    // The string scalar: varint length, masked crc of the length, the bytes.
    let mut scalar = Vec::new();
    varint(&mut scalar, graph.len() as u64);
    let len_crc = crc32c(&(graph.len() as u32).to_le_bytes());
    scalar.extend(masked(len_crc).to_le_bytes());
    scalar.extend_from_slice(&graph);
    let mut crc_input = (graph.len() as u32).to_le_bytes().to_vec();
    crc_input.extend(masked(len_crc).to_le_bytes());
    crc_input.extend_from_slice(&graph);
    let object_graph = entry(
        7,
        &[],
        0,
        scalar.len() as u64,
        masked(crc32c(&crc_input)),
        &[],
    );
    let header = header();
    let entries: Vec<(usize, &[u8], &[u8])> = vec![
        (0, b"", &header),
        (0, b"_CHECKPOINTABLE_OBJECT_GRAPH", &object_graph),
    ];
    let dir = scratch();
    let index = checkpoint(dir.path(), &block(&entries), &scalar);
    refused(&["inspect", index.to_str().unwrap()], &index);
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

/// A copy of the real checkpoint folder `fixtures/tf/keras-tiny-ckpt`.
fn real_checkpoint(dir: &Path) -> PathBuf {
    let folder = dir.join("ckpt");
    std::fs::create_dir(&folder).unwrap();
    for name in ["checkpoint", "ckpt.index", "ckpt.data-00000-of-00001"] {
        std::fs::copy(fixture("tf/keras-tiny-ckpt").join(name), folder.join(name)).unwrap();
    }
    folder
}

#[test]
fn an_index_that_is_a_fifo_or_a_device_is_refused_without_blocking() {
    let dir = scratch();
    let folder = real_checkpoint(dir.path());
    let index = folder.join("ckpt.index");
    std::fs::remove_file(&index).unwrap();
    mkfifo(&index);
    let line = refused(&["inspect", folder.to_str().unwrap()], &index);
    assert!(line.contains("FIFO"), "{line}");
    refused(&["inspect", index.to_str().unwrap()], &index);
    std::fs::remove_file(&index).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &index).unwrap();
    let line = refused(&["inspect", folder.to_str().unwrap()], &index);
    assert!(line.contains("device"), "{line}");
    // The state file itself as a FIFO.
    let state = folder.join("checkpoint");
    std::fs::remove_file(&state).unwrap();
    mkfifo(&state);
    refused(&["inspect", folder.to_str().unwrap()], &state);
}

#[test]
fn a_state_file_naming_a_checkpoint_outside_its_folder_is_refused() {
    let dir = scratch();
    let folder = real_checkpoint(dir.path());
    // A checkpoint beside the folder, reachable by `../` and by an absolute path.
    let other = dir.path().join("outside");
    std::fs::create_dir(&other).unwrap();
    for name in ["ckpt.index", "ckpt.data-00000-of-00001"] {
        std::fs::copy(folder.join(name), other.join(name)).unwrap();
    }
    let state = folder.join("checkpoint");
    std::fs::remove_file(folder.join("ckpt.index")).unwrap();
    for named in [
        "../outside/ckpt".to_owned(),
        other.join("ckpt").to_str().unwrap().to_owned(),
    ] {
        std::fs::write(&state, format!("model_checkpoint_path: \"{named}\"\n")).unwrap();
        let line = refused(&["inspect", folder.to_str().unwrap()], &state);
        assert!(line.contains("outside the folder"), "{line}");
    }
    // Passing that checkpoint directly reads it.
    let outcome = super::run_limited(&["inspect", other.join("ckpt").to_str().unwrap()]);
    assert_eq!(outcome.code, Some(0), "{outcome:?}");
    assert!(listing(&other).len() == 2);
}

/// A `saved_model.pb` whose serving function `f0` captures 1,000 variables and calls `f1`
/// twice, … down to `f30` (2^30 paths), passing its 1,000 arguments on reordered (a swap in
/// one call, a rotation in the other) so that every path binds them differently.
fn fan_out_saved_model(args: usize) -> Vec<u8> {
    let names: Vec<String> = (0..args).map(|a| format!("a{a}")).collect();
    let mut library = Vec::new();
    for i in 0..31 {
        let mut signature = Vec::new();
        pb_bytes(&mut signature, 1, format!("f{i}").as_bytes());
        for n in &names {
            let mut arg = Vec::new();
            pb_bytes(&mut arg, 1, n.as_bytes());
            pb_bytes(&mut signature, 2, &arg);
        }
        let mut function = Vec::new();
        pb_bytes(&mut function, 1, &signature);
        if i < 30 {
            for how in [1, 2] {
                let mut node = Vec::new();
                pb_bytes(&mut node, 1, if how == 1 { b"a" } else { b"b" });
                pb_bytes(&mut node, 2, b"StatefulPartitionedCall");
                for a in 0..args {
                    let source = if how == 1 {
                        a ^ usize::from(a < 2)
                    } else {
                        (a + 1) % args
                    };
                    pb_bytes(&mut node, 3, names[source].as_bytes());
                }
                let mut callee = Vec::new();
                pb_bytes(&mut callee, 1, format!("f{}", i + 1).as_bytes());
                let mut value = Vec::new();
                pb_bytes(&mut value, 10, &callee);
                let mut entry = Vec::new();
                pb_bytes(&mut entry, 1, b"f");
                pb_bytes(&mut entry, 2, &value);
                pb_bytes(&mut node, 5, &entry);
                pb_bytes(&mut function, 3, &node);
            }
        }
        pb_bytes(&mut library, 1, &function);
    }
    let mut graph_def = Vec::new();
    pb_bytes(&mut graph_def, 2, &library);
    let reference = |id: u64, name: &[u8]| {
        let mut r = Vec::new();
        pb_varint(&mut r, 1, id);
        pb_bytes(&mut r, 2, name);
        r
    };
    let mut objects = Vec::new();
    let mut root = Vec::new();
    pb_bytes(&mut root, 1, &reference(1, b"signatures"));
    pb_bytes(&mut objects, 1, &root);
    let mut signatures = Vec::new();
    pb_bytes(&mut signatures, 1, &reference(2, b"serving_default"));
    pb_bytes(&mut objects, 1, &signatures);
    let mut bare = Vec::new();
    pb_bytes(&mut bare, 1, b"f0");
    let mut serving = Vec::new();
    pb_bytes(&mut serving, 8, &bare);
    pb_bytes(&mut objects, 1, &serving);
    for a in 0..args {
        let mut variable = Vec::new();
        pb_bytes(&mut variable, 6, format!("v{a}").as_bytes());
        let mut object = Vec::new();
        pb_bytes(&mut object, 7, &variable);
        pb_bytes(&mut objects, 1, &object);
    }
    let mut bound = Vec::new();
    for a in 0..args {
        varint(&mut bound, 3 + a as u64);
    }
    let mut concrete = Vec::new();
    pb_bytes(&mut concrete, 2, &bound);
    let mut entry = Vec::new();
    pb_bytes(&mut entry, 1, b"f0");
    pb_bytes(&mut entry, 2, &concrete);
    pb_bytes(&mut objects, 2, &entry);
    let mut meta = Vec::new();
    pb_bytes(&mut meta, 2, &graph_def);
    pb_bytes(&mut meta, 7, &objects);
    let mut saved_model = Vec::new();
    pb_bytes(&mut saved_model, 2, &meta);
    saved_model
}

#[test]
fn a_saved_model_whose_calls_fan_out_with_1000_arguments_ends_in_time() {
    // Over 60 s before: the 500,000-node budget did not count the 1,000 arguments each call
    // binds. Now every argument bound and every distinct call is charged to the budget.
    let dir = scratch();
    let saved = dir.path().join("fan-out");
    std::fs::create_dir_all(saved.join("variables")).unwrap();
    for name in ["variables.index", "variables.data-00000-of-00001"] {
        std::fs::copy(
            fixture("tf/keras3-tiny-export/variables").join(name),
            saved.join("variables").join(name),
        )
        .unwrap();
    }
    let pb = file(&saved, "saved_model.pb", &fan_out_saved_model(1000));
    assert!(std::fs::metadata(&pb).unwrap().len() < 1 << 20);
    let line = refused(&["inspect", saved.to_str().unwrap()], &pb);
    assert!(line.contains("memory") || line.contains("work"), "{line}");
}

/// `fixtures/tf/tf-official-tiny` with its data shard cut in half (in `fixtures/hostile/` until it
/// was made here): refused like the files committed there.
#[test]
fn a_checkpoint_whose_data_shard_is_cut_short_is_refused() {
    let dir = scratch();
    let cut = dir.path().join("tf-shard-cut");
    std::fs::create_dir(&cut).unwrap();
    let official = fixture("tf/tf-official-tiny");
    for name in ["checkpoint", "model.ckpt-1000.index"] {
        std::fs::copy(official.join(name), cut.join(name)).unwrap();
    }
    let shard = "model.ckpt-1000.data-00000-of-00001";
    let data = std::fs::read(official.join(shard)).unwrap();
    file(&cut, shard, &data[..data.len() / 2]);
    refused_by_inspect_and_cost(&cut);
}

/// Reads a varint at `pos`; returns it and the position after it.
fn read_varint(bytes: &[u8], mut pos: usize) -> (u64, usize) {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = bytes[pos];
        pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte < 0x80 {
            return (value, pos);
        }
    }
}

/// Edits of the real `fixtures/tf/tf-official-tiny` index (in `fixtures/hostile/` until they
/// were made here), refused like the files committed there: the footer's index-block handle
/// pointing far past the end, one byte flipped inside the data block (its crc32c fails), the
/// index cut inside its footer.
#[test]
fn damaged_index_files_are_refused() {
    let dir = scratch();
    let index = std::fs::read(fixture("tf/tf-official-tiny/model.ckpt-1000.index")).unwrap();
    let footer = index.len() - 48;
    let (_, pos) = read_varint(&index, footer);
    let (_, pos) = read_varint(&index, pos);
    let mut bad = index.clone();
    bad[pos..pos + 5].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut flipped = index.clone();
    flipped[index.len() / 3] ^= 0x10;
    for (name, bytes) in [
        ("tf-bad-block-handle.index", &bad[..]),
        ("tf-flipped-byte.index", &flipped[..]),
        ("tf-truncated.index", &index[..index.len() - 20]),
    ] {
        refused_by_inspect_and_cost(&file(dir.path(), name, bytes));
    }
}
