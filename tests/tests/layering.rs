//! The folders of `protocol/src` and `node/src` are layers: no folder uses
//! one above it, no two files of a folder import each other in a circle
//! unless they say they are one unit, and no file grows past 1,000 lines
//! without saying why. See `civsync_tests::layering` for the tables.

use civsync_tests::layering::{
    check, long_files, read_tree, LayerTable, Violation, NODE, PROTOCOL,
};
use std::path::Path;

fn assert_layered(table: &LayerTable) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(table.crate_name)
        .join("src");
    let files = read_tree(&src).expect("the crate's sources are readable");
    assert!(
        files.len() > 20,
        "{} holds only {} files: wrong folder?",
        src.display(),
        files.len()
    );
    assert_none(&check(table, &files), table.crate_name);
}

fn assert_none(violations: &[Violation], crate_name: &str) {
    assert!(
        violations.is_empty(),
        "{crate_name}: {} layering rules broken:\n{}",
        violations.len(),
        violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn protocol_folders_use_only_the_layers_below_them() {
    assert_layered(&PROTOCOL);
}

#[test]
fn node_folders_use_only_the_layers_below_them() {
    assert_layered(&NODE);
}

#[test]
fn no_file_of_the_simulator_or_this_harness_grows_past_the_limit_unexplained() {
    for crate_folder in ["sim", "tests"] {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(crate_folder)
            .join("src");
        let files = read_tree(&src).expect("the crate's sources are readable");
        assert!(!files.is_empty(), "{} holds no sources", src.display());
        assert_none(&long_files(crate_folder, &files), crate_folder);
    }
}
