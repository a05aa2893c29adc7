//! The architecture invariants of ARCHITECTURE.md that a machine can check: no import cycle
//! between the shell's source files, the core's and the simulation's dependencies, config
//! importing only the core, a thin `main.rs`, a store split by concern.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`, as module paths (`ingest::pipeline`, `store`, `main`).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = relative
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|last| last == "mod") {
                    parts.pop();
                }
                let name = if parts.is_empty() || parts == ["lib"] {
                    "crate".to_string()
                } else {
                    parts.join("::")
                };
                found.insert(name, path);
            }
        }
    }
    found
}

/// The code of a file without its `#[cfg(test)]` module (tests may import anything) and
/// without comments.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a file refers to: `crate::a::b` resolves to the longest known module prefix;
/// `super::x` to its parent's child. Grouped imports (`use crate::{a, b::c}`) are expanded.
fn references(module: &str, code: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let parent = match module.rsplit_once("::") {
        Some((parent, _)) => parent.to_string(),
        None => "crate".to_string(),
    };
    let mut paths = Vec::new();
    for prefix in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let base = if prefix == "crate::" || parent == "crate" {
                String::new()
            } else {
                format!("{parent}::")
            };
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    paths.push(format!("{base}{}", item.trim()));
                }
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .unwrap_or(rest.len());
                let mut path = rest[..end].to_string();
                // `crate::a::{b, c}`
                if rest[end..].starts_with('{') && path.ends_with("::") {
                    let group = &rest[end + 1..];
                    let close = group.find('}').unwrap_or(group.len());
                    for item in group[..close].split(',') {
                        paths.push(format!("{base}{path}{}", item.trim()));
                    }
                    continue;
                }
                while path.ends_with(':') {
                    path.pop();
                }
                paths.push(format!("{base}{path}"));
            }
        }
    }
    for path in paths {
        let parts: Vec<&str> = path.split("::").filter(|part| !part.is_empty()).collect();
        for len in (1..=parts.len()).rev() {
            let candidate = parts[..len].join("::");
            if known.contains_key(&candidate) {
                if candidate != module {
                    out.insert(candidate);
                }
                break;
            }
        }
    }
    out
}

fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let known = modules(src);
    known
        .iter()
        .filter(|(name, _)| name.as_str() != "crate" && name.as_str() != "main")
        .map(|(name, path)| {
            let mut refs = references(name, &code_of(path), &known);
            // A module refers to its own children by declaring them: not an import.
            refs.retain(|other| !other.starts_with(&format!("{name}::")) && other != "crate");
            (name.clone(), refs)
        })
        .collect()
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        let graph = state.graph;
        for next in graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !graph.contains_key(next) {
                continue;
            }
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.push(top.to_string());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(name, refs)| (name.to_string(), refs.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(
        cycles(&graph),
        vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]
    );
}

#[test]
fn the_reference_reader_resolves_paths_and_groups() {
    let known: BTreeMap<String, PathBuf> = [
        "store",
        "store::lineage",
        "ingest::pipeline",
        "ingest::writer",
        "config",
    ]
    .into_iter()
    .map(|name| (name.to_string(), PathBuf::new()))
    .collect();
    let code = "use crate::store::{Store, StoreError};\nuse crate::{config, ingest::pipeline::Pipeline};\nuse super::writer::Writer;\nlet x = crate::store::lineage::f();";
    let refs = references("ingest::replay", code, &known);
    let expected: BTreeSet<String> = [
        "store",
        "config",
        "ingest::pipeline",
        "ingest::writer",
        "store::lineage",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(refs, expected);
}

#[test]
fn no_import_cycles_between_the_shells_source_files() {
    let graph = import_graph(&root().join("src"));
    assert!(graph.len() > 20, "only {} modules found", graph.len());
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles: {found:?}");
}

#[test]
fn no_import_cycles_in_the_core_and_the_simulation() {
    for krate in ["crates/mjlink-core/src", "crates/mjlink-sim/src"] {
        let graph = import_graph(&root().join(krate));
        let found = cycles(&graph);
        assert!(found.is_empty(), "{krate}: import cycles: {found:?}");
    }
}

/// The `[dependencies]` section of a manifest: the crate names it lists.
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(manifest)).unwrap();
    let table: toml::Table = text.parse().unwrap();
    let mut names = BTreeSet::new();
    for section in ["dependencies", "build-dependencies"] {
        if let Some(deps) = table.get(section).and_then(|deps| deps.as_table()) {
            names.extend(deps.keys().cloned());
        }
    }
    names
}

#[test]
fn the_core_does_no_io_and_reads_no_clock() {
    let deps = dependencies("crates/mjlink-core/Cargo.toml");
    for forbidden in ["tokio", "rusqlite", "serenity", "reqwest", "mjlink", "mjlink-sim"] {
        assert!(!deps.contains(forbidden), "mjlink-core depends on {forbidden}");
    }
    // chrono without its clock feature: `Utc::now` does not compile in the core.
    let workspace: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let chrono = &workspace["workspace"]["dependencies"]["chrono"];
    assert_eq!(chrono["default-features"].as_bool(), Some(false));
    let features: Vec<&str> = chrono["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|feature| feature.as_str())
        .collect();
    assert!(!features.contains(&"clock"), "{features:?}");
    let core_manifest: toml::Table = std::fs::read_to_string(root().join("crates/mjlink-core/Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let core_chrono = core_manifest["dependencies"]["chrono"].to_string();
    assert!(
        !core_chrono.contains("clock"),
        "the core turns on chrono's clock: {core_chrono}"
    );
    for (name, path) in modules(&root().join("crates/mjlink-core/src")) {
        let code = code_of(&path);
        for io in [
            "std::fs",
            "std::net",
            "std::time::SystemTime",
            "Instant::now",
            "Utc::now",
            "std::process",
            "std::thread",
        ] {
            assert!(!code.contains(io), "mjlink-core::{name} uses {io}");
        }
    }
}

#[test]
fn the_simulation_depends_on_no_mjlink_crate() {
    let deps = dependencies("crates/mjlink-sim/Cargo.toml");
    assert!(
        deps.iter().all(|dep| !dep.starts_with("mjlink")),
        "mjlink-sim depends on {deps:?}"
    );
}

fn version_key(text: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = text.split('.').map(|part| part.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

/// `rust-version` is true: no locked dependency needs a newer toolchain than the workspace
/// declares (what `cargo metadata` reports of each package in Cargo.lock that this machine
/// builds: `--filter-platform` with the host, since offline a fresh machine holds only the
/// packages its own platform needs, not Android's or Windows').
#[test]
fn rust_version_is_true_for_the_locked_dependencies() {
    let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&rustc.stdout).to_string();
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("no host in rustc -vV: {version}"))
        .trim()
        .to_string();
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let workspace: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let declared = workspace["workspace"]["package"]["rust-version"]
        .as_str()
        .unwrap();
    let newest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|package| {
            let needed = package["rust_version"].as_str()?;
            Some((
                version_key(needed),
                format!("{} {} needs {needed}", package["name"], package["version"]),
            ))
        })
        .max()
        .unwrap();
    assert!(
        newest.0 <= version_key(declared),
        "rust-version {declared} is not true: {}",
        newest.1
    );
}

/// `main.rs` parses arguments, sets up tracing and calls one library function per command.
#[test]
fn main_is_thin() {
    let main = std::fs::read_to_string(root().join("src/main.rs")).unwrap();
    let lines = main.lines().count();
    assert!(lines < 400, "src/main.rs has {lines} lines");
    for forbidden in [
        "Store::open",
        "Writer::spawn",
        "Rest::new",
        "Rest::from_config",
        "Runtime::new()",
    ] {
        let uses = main.matches(forbidden).count();
        let allowed = usize::from(forbidden == "Runtime::new()");
        assert!(uses <= allowed, "src/main.rs calls {forbidden} {uses} times");
    }
}

/// Config knows no subsystem: subsystems build their options from their section.
#[test]
fn config_imports_only_the_core() {
    let known = modules(&root().join("src"));
    let config: Vec<(&String, &PathBuf)> = known
        .iter()
        .filter(|(name, _)| name.as_str() == "config" || name.starts_with("config::"))
        .collect();
    assert!(!config.is_empty());
    for (name, path) in config {
        let outside: Vec<String> = references(name, &code_of(path), &known)
            .into_iter()
            .filter(|other| other != "config" && !other.starts_with("config::"))
            .collect();
        assert!(outside.is_empty(), "{name} imports {outside:?}");
    }
}

/// The store is split by concern: no file of it over 600 lines.
#[test]
fn store_files_stay_small() {
    for entry in std::fs::read_dir(root().join("src/store")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            assert!(lines <= 600, "{} has {lines} lines", path.display());
        }
    }
}

/// The wall clock is read in one place of the shell (`src/clock.rs`), and never in the core.
#[test]
fn the_wall_clock_is_read_in_one_place() {
    for (name, path) in modules(&root().join("src")) {
        if name == "clock" {
            continue;
        }
        let code = code_of(&path);
        for reading in ["Utc::now", "SystemTime::now", "Local::now"] {
            assert!(
                !code.contains(reading),
                "src module {name} reads the clock ({reading}); use crate::clock"
            );
        }
    }
}
