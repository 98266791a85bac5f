//! The layering rules of `protocol/src` and `node/src`, checked from the
//! source text so they stay true as code lands.
//!
//! A crate's top-level modules (a folder, or a file beside them) are its
//! layers. Each layer may name only the layers its row of the table allows
//! (`crate::<layer>` anywhere in its code). Within a folder, files may not
//! import each other in a circle unless every file of the circle says at its
//! top that they are one unit (`//! One unit with ...`). A file over
//! `FILE_LINES_MAX` lines must say at its top why it is one unit.
//!
//! Test code may reach up (a test of the sync session drives it against a
//! real replica): files named `tests.rs`, `*_tests.rs`, `test_*.rs`, and
//! everything from an inline `#[cfg(test)]` module to the end of a file, are
//! not checked against the table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A file longer than this must say at its top why it is one unit.
pub const FILE_LINES_MAX: usize = 1_000;

/// The marker a file's top comment carries when it is long, or part of an
/// import circle, on purpose.
pub const ONE_UNIT_MARKER: &str = "one unit";

/// One crate's layering: for each layer, the layers it may use.
pub struct LayerTable {
    pub crate_name: &'static str,
    pub allowed: &'static [(&'static str, &'static [&'static str])],
    /// Files at the crate root that belong to no layer (the crate root and
    /// the binary).
    pub roots: &'static [&'static str],
}

/// The protocol crate: identity and storage at the bottom, service at the
/// top. Read with `protocol/src/lib.rs`, which shows the same table.
pub const PROTOCOL: LayerTable = LayerTable {
    crate_name: "protocol",
    allowed: &[
        ("identity", &[]),
        ("storage", &[]),
        ("faults", &[]),
        ("domain", &["identity"]),
        ("layout", &["identity", "domain", "faults"]),
        ("sync", &["identity"]),
        (
            "replica",
            &["identity", "domain", "layout", "storage", "sync", "faults"],
        ),
        (
            "stats",
            &[
                "identity", "domain", "layout", "storage", "sync", "replica", "faults",
            ],
        ),
        (
            "service",
            &[
                "identity", "domain", "layout", "storage", "sync", "replica", "stats", "faults",
            ],
        ),
        ("test_support", &["*"]),
    ],
    roots: &["lib.rs"],
};

/// The node crate: the base modules at the bottom, `demo` at the top. Read
/// with `node/src/lib.rs`, which shows the same table.
pub const NODE: LayerTable = LayerTable {
    crate_name: "node",
    allowed: &[
        ("clock", &[]),
        ("config", &[]),
        ("logging", &[]),
        ("progress", &[]),
        ("secrets", &[]),
        ("store", &["clock", "progress"]),
        ("files", &[]),
        ("net", &["store", "clock", "config", "secrets", "progress"]),
        ("access", &["store", "clock", "config", "secrets"]),
        (
            "context",
            &[
                "access", "net", "store", "files", "clock", "config", "secrets", "progress",
            ],
        ),
        (
            "api",
            &[
                "context", "access", "net", "store", "files", "clock", "config", "secrets",
                "progress",
            ],
        ),
        (
            "web",
            &[
                "api", "context", "access", "net", "store", "files", "clock", "config", "secrets",
                "progress",
            ],
        ),
        (
            "node",
            &[
                "web", "api", "context", "access", "net", "store", "files", "clock", "config",
                "secrets", "logging", "progress",
            ],
        ),
        (
            "cli",
            &[
                "node", "web", "api", "context", "access", "net", "store", "files", "clock",
                "config", "secrets", "logging", "progress",
            ],
        ),
        (
            "demo",
            &[
                "cli", "node", "web", "api", "context", "access", "net", "store", "files", "clock",
                "config", "secrets", "logging", "progress",
            ],
        ),
    ],
    roots: &["lib.rs", "main.rs"],
};

/// One broken rule, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub file: String,
    pub line: usize,
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.rule)
    }
}

/// A source file: its path below `src/` (with `/`) and its text.
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// Every `.rs` file below `src`, sorted by path.
pub fn read_tree(src: &Path) -> std::io::Result<Vec<SourceFile>> {
    let mut files = Vec::new();
    let mut pending = vec![src.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path: PathBuf = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path
                    .strip_prefix(src)
                    .expect("walked below src")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push(SourceFile {
                    path: relative,
                    text: std::fs::read_to_string(&path)?,
                });
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The layer a file belongs to: its first path segment without `.rs`.
fn layer_of(path: &str) -> &str {
    let first = path.split('/').next().unwrap_or(path);
    first.strip_suffix(".rs").unwrap_or(first)
}

fn is_test_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "tests.rs" || name.ends_with("_tests.rs") || name.starts_with("test_")
}

/// The lines of product code: every line outside an inline top-level
/// `#[cfg(test)] mod ... {` (up to its closing `}` in column 0, where
/// rustfmt puts it), comment lines left out (a doc link is not an import).
fn product_lines(text: &str) -> Vec<(usize, &str)> {
    let mut lines = Vec::new();
    let all: Vec<&str> = text.lines().collect();
    let mut in_test_module = false;
    for (at, line) in all.iter().enumerate() {
        if in_test_module {
            in_test_module = *line != "}";
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && all
                .get(at + 1)
                .is_some_and(|next| next.starts_with("mod ") && next.ends_with('{'))
        {
            in_test_module = true;
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        lines.push((at + 1, *line));
    }
    lines
}

/// Every `crate::<name>` in a line (the first segment after `crate::`).
fn crate_references(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        let before = &rest[..at];
        rest = &rest[at + "crate::".len()..];
        // `civsync_protocol::` or `$crate::` are other crates or macros.
        if before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_len > 0 {
            found.push(&rest[..name_len]);
        }
    }
    found
}

/// Check one crate's files against its table.
pub fn check(table: &LayerTable, files: &[SourceFile]) -> Vec<Violation> {
    let allowed: BTreeMap<&str, &[&str]> = table.allowed.iter().copied().collect();
    let mut violations = Vec::new();
    for file in files {
        let path = file.path.as_str();
        if table.roots.contains(&path) {
            continue;
        }
        check_length(table, file, &mut violations);
        if is_test_file(path) {
            continue;
        }
        let layer = layer_of(path);
        let Some(may_use) = allowed.get(layer) else {
            violations.push(Violation {
                file: format!("{}/src/{path}", table.crate_name),
                line: 1,
                rule: format!(
                    "layer `{layer}` is not in the layering table; add it to the table (and \
                     to lib.rs) with the layers it may use"
                ),
            });
            continue;
        };
        if may_use.contains(&"*") {
            continue;
        }
        for (line_number, line) in product_lines(&file.text) {
            for used in crate_references(line) {
                if used == layer || may_use.contains(&used) || !allowed.contains_key(used) {
                    continue;
                }
                violations.push(Violation {
                    file: format!("{}/src/{path}", table.crate_name),
                    line: line_number,
                    rule: format!(
                        "layer `{layer}` uses `crate::{used}`, which it may not (it may use: {})",
                        if may_use.is_empty() {
                            "nothing".to_string()
                        } else {
                            may_use.join(", ")
                        }
                    ),
                });
            }
        }
    }
    violations.extend(file_circles(table, files));
    violations
}

fn says_one_unit(text: &str) -> bool {
    text.lines()
        .take_while(|line| line.starts_with("//!"))
        .any(|line| line.to_lowercase().contains(ONE_UNIT_MARKER))
}

/// Files of a crate with no layer table (the simulator, this harness) over
/// [`FILE_LINES_MAX`] lines whose top does not say why they are one unit.
pub fn long_files(crate_name: &'static str, files: &[SourceFile]) -> Vec<Violation> {
    let table = LayerTable {
        crate_name,
        allowed: &[],
        roots: &[],
    };
    let mut violations = Vec::new();
    for file in files {
        check_length(&table, file, &mut violations);
    }
    violations
}

fn check_length(table: &LayerTable, file: &SourceFile, violations: &mut Vec<Violation>) {
    let lines = file.text.lines().count();
    if lines > FILE_LINES_MAX && !says_one_unit(&file.text) {
        violations.push(Violation {
            file: format!("{}/src/{}", table.crate_name, file.path),
            line: 1,
            rule: format!(
                "{lines} lines (more than {FILE_LINES_MAX}) and no `//! One unit: why` at its top"
            ),
        });
    }
}

/// Within one folder, the files each product file imports: `super::<file>`
/// from a file directly in the folder, `crate::<folder>::<file>`, and
/// `super::<item>` (an item of the folder's `mod.rs`).
fn folder_edges(files: &[SourceFile]) -> BTreeMap<String, BTreeSet<String>> {
    let paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let path = file.path.as_str();
        if is_test_file(path) {
            continue;
        }
        let Some((folder, name)) = path.rsplit_once('/') else {
            continue;
        };
        let stem = name.strip_suffix(".rs").unwrap_or(name);
        let sibling = |target: &str| -> Option<String> {
            let file = format!("{folder}/{target}.rs");
            paths.contains(file.as_str()).then_some(file)
        };
        let parent_module = format!("{folder}/mod.rs");
        for (_, line) in product_lines(&file.text) {
            let mut targets = Vec::new();
            for (prefix, is_super) in [
                (format!("crate::{}::", folder.replace('/', "::")), false),
                ("super::".to_string(), true),
            ] {
                let mut rest = line;
                while let Some(at) = rest.find(&prefix) {
                    rest = &rest[at + prefix.len()..];
                    let len = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    let target = &rest[..len];
                    if target.is_empty() || target == "super" {
                        continue;
                    }
                    // `super::` in mod.rs points above the folder.
                    if is_super && stem == "mod" {
                        continue;
                    }
                    match sibling(target) {
                        Some(file) => targets.push(file),
                        None if (is_super || target.starts_with(char::is_uppercase))
                            && paths.contains(parent_module.as_str()) =>
                        {
                            targets.push(parent_module.clone());
                        }
                        None => {}
                    }
                }
            }
            for target in targets {
                if target != path {
                    edges.entry(path.to_string()).or_default().insert(target);
                }
            }
        }
        // A folder's mod.rs uses the files it declares and reaches into.
        if stem == "mod" {
            for (_, line) in product_lines(&file.text) {
                let trimmed = line.trim_start();
                for keyword in ["pub use ", "use "] {
                    if let Some(rest) = trimmed.strip_prefix(keyword) {
                        let len = rest
                            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .unwrap_or(rest.len());
                        if let Some(file) = sibling(&rest[..len]) {
                            edges.entry(path.to_string()).or_default().insert(file);
                        }
                    }
                }
            }
        }
    }
    edges
}

/// Import circles between files of one folder whose files do not all say
/// they are one unit.
fn file_circles(table: &LayerTable, files: &[SourceFile]) -> Vec<Violation> {
    let edges = folder_edges(files);
    let texts: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let mut violations = Vec::new();
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    for start in edges.keys() {
        // Shortest path back to `start` (breadth first), so each circle is
        // named by its fewest files.
        let mut previous: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut closing = None;
        while let Some(at) = queue.pop_front() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    closing = Some(at.clone());
                    break;
                }
                if !previous.contains_key(next) {
                    previous.insert(next.clone(), at.clone());
                    queue.push_back(next.clone());
                }
            }
            if closing.is_some() {
                break;
            }
        }
        let Some(mut at) = closing else { continue };
        let mut circle = vec![at.clone()];
        while &at != start {
            at = previous[&at].clone();
            circle.push(at.clone());
        }
        circle.reverse();
        if circle
            .iter()
            .all(|file| texts.get(file.as_str()).is_some_and(|t| says_one_unit(t)))
        {
            continue;
        }
        let mut key = circle.clone();
        key.sort();
        if reported.insert(key) {
            violations.push(Violation {
                file: format!("{}/src/{start}", table.crate_name),
                line: 1,
                rule: format!(
                    "import circle between files: {} -> {start}; break it, or say `//! One \
                     unit with ...` at the top of each if they are one unit",
                    circle.join(" -> ")
                ),
            });
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: LayerTable = LayerTable {
        crate_name: "tiny",
        allowed: &[("low", &[]), ("high", &["low"])],
        roots: &["lib.rs"],
    };

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_downward_import_passes_and_an_upward_one_is_named() {
        let files = [
            file("high/mod.rs", "use crate::low::Thing;\n"),
            file("low/mod.rs", "use crate::high::Other;\n"),
        ];
        let violations = check(&TINY, &files);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].file, "tiny/src/low/mod.rs");
        assert!(violations[0].rule.contains("`crate::high`"));
    }

    #[test]
    fn comments_and_test_code_may_reach_up() {
        let files = [file(
            "low/a.rs",
            "//! see [`crate::high::Thing`]\nfn f() {}\n#[cfg(test)]\nmod tests {\n    use crate::high::Thing;\n}\n",
        )];
        assert_eq!(check(&TINY, &files), vec![]);
        let test_file = [file("low/tests.rs", "use crate::high::Thing;\n")];
        assert_eq!(check(&TINY, &test_file), vec![]);
    }

    #[test]
    fn code_after_an_inline_test_module_is_checked() {
        let files = [file(
            "low/a.rs",
            "#[cfg(test)]\nmod tests {\n    use crate::high::Thing;\n}\n\nuse crate::high::Other;\n",
        )];
        let violations = check(&TINY, &files);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert_eq!(violations[0].line, 6);
    }

    #[test]
    fn an_unknown_layer_is_reported() {
        let violations = check(&TINY, &[file("middle.rs", "fn f() {}\n")]);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].rule.contains("not in the layering table"));
    }

    #[test]
    fn a_circle_between_files_is_reported_unless_both_say_one_unit() {
        let circle = [
            file("low/a.rs", "use crate::low::b::B;\n"),
            file("low/b.rs", "use super::a::A;\n"),
        ];
        let violations = check(&TINY, &circle);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].rule.contains("import circle"));
        let declared = [
            file(
                "low/a.rs",
                "//! One unit with b.rs: why.\nuse crate::low::b::B;\n",
            ),
            file(
                "low/b.rs",
                "//! One unit with a.rs: why.\nuse super::a::A;\n",
            ),
        ];
        assert_eq!(check(&TINY, &declared), vec![]);
    }

    #[test]
    fn a_long_file_must_say_why_it_is_one_unit() {
        let long = "fn f() {}\n".repeat(FILE_LINES_MAX + 1);
        let violations = check(&TINY, &[file("low/a.rs", &long)]);
        assert_eq!(violations.len(), 1);
        assert!(violations[0].rule.contains("no `//! One unit"));
        let said = format!("//! One unit: the whole state machine.\n{long}");
        assert_eq!(check(&TINY, &[file("low/a.rs", &said)]), vec![]);
    }
}
