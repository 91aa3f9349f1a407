//! The layers of src/ stay layers. docs/architecture.md writes the folders' order once, top
//! to bottom ("The layers"); this test reads it from there, so the doc and the test cannot
//! drift, and fails on
//! - an import from a folder to one drawn above it (an upward edge) that is not in
//!   `ALLOWED_UPWARD`, and on an entry of `ALLOWED_UPWARD` that is no longer an edge (the
//!   list may only shrink);
//! - an import cycle between modules, a parent and its child included.
//!
//! It reads the source as text. Every path in a file's code (outside comments and its
//! `#[cfg(test)] mod tests`) that names a module of the crate is an edge from the file's
//! module to the deepest module the path names: `crate::a::b`, `super::b`, `self::b`, and
//! a child's name (`reload::Reloader` in `server/mod.rs`); `use` groups (`a::{b, c::d}`)
//! count each of their paths. A path through a re-export (`crate::relay::Relay`, which
//! `relay/mod.rs` takes from `relay/accept.rs`) is an edge to the module the item lives in:
//! a module that only gathers names for its callers is a door, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The upward edges allowed, each `(from, to)` module with why. None is left (issue 24
/// removed the last); an edge missing from this list fails the test, and so does one listed
/// here that the code no longer has.
const ALLOWED_UPWARD: &[(&str, &str)] = &[];

/// The edges that close a cycle inside one folder, each with why it remains; the cycle
/// search leaves them out. It may only shrink, as `ALLOWED_UPWARD`.
const ALLOWED_IN_A_CYCLE: &[(&str, &str)] = &[];

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot read {dir:?}: {error}"));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `src/relay/mod.rs` → `relay`, `src/relay/copy.rs` → `relay::copy`, `src/lib.rs` → the
/// crate root, `""`; `None` for `src/main.rs`, a crate of its own.
fn module_name(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> =
        relative.components().map(|part| part.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "main" => None,
        [only] if only == "lib" => Some(String::new()),
        _ => Some(parts.join("::")),
    }
}

/// The code of a source file: without its `#[cfg(test)]` module (tests may reach
/// anywhere) and without comments (a doc link is not an import).
fn code_of(source: &str) -> String {
    // `#[cfg(test)]` or `#[cfg(all(test, unix))]` on the line before `mod tests {`.
    let tests = source.match_indices("\nmod tests {").find_map(|(at, _)| {
        let attribute = source[..at].rfind('\n').map_or(0, |start| start + 1);
        let line = &source[attribute..at];
        (line.starts_with("#[cfg(") && line.contains("test")).then_some(attribute)
    });
    let source = &source[..tests.unwrap_or(source.len())];
    source
        .lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string ("http://") cuts a line short; the rest of such a
            // line is text, not a path.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each path in `code` that starts with `crate`, `super`, `self` or one of `children`, as
/// its words; `{..}` groups give one path per member (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn paths_in(code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut paths = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        // Words are ASCII: a byte of a UTF-8 character is never `is_word`, so every index
        // where a word starts is a character boundary.
        let starts_word = is_word(bytes[at]) && (at == 0 || !is_word(bytes[at - 1]));
        let after_colons = at >= 2 && &bytes[at - 2..at] == b"::";
        if starts_word && !after_colons {
            let end =
                at + bytes[at..].iter().position(|&b| !is_word(b)).unwrap_or(bytes.len() - at);
            let word = &code[at..end];
            let roots = ["crate", "super", "self"];
            if code[end..].starts_with("::") && (roots.contains(&word) || children.contains(word)) {
                let (tree, used) = use_tree(&code[at..]);
                paths.extend(tree);
                at += used.max(1);
                continue;
            }
            at = end;
            continue;
        }
        at += 1;
    }
    paths
}

/// The paths a use tree starting at `text` spells, and how many bytes it took.
fn use_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut words = Vec::new();
    let mut at = 0;
    loop {
        let rest = &text[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if let Some(group) = trimmed.strip_prefix('{') {
            at += 1;
            let mut paths = Vec::new();
            let mut inner = group;
            loop {
                let skipped = inner.len() - inner.trim_start_matches([' ', '\n', ',']).len();
                at += skipped;
                inner = &inner[skipped..];
                if let Some(after) = inner.strip_prefix('}') {
                    at += 1;
                    let _ = after;
                    break;
                }
                if inner.is_empty() {
                    break;
                }
                let (members, used) = use_tree(inner);
                for member in members {
                    paths.push(words.iter().cloned().chain(member).collect());
                }
                at += used.max(1);
                inner = &text[at..];
            }
            return (paths, at);
        }
        let end =
            trimmed.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(trimmed.len());
        if end == 0 {
            return (vec![words], at);
        }
        words.push(trimmed[..end].to_string());
        at += end;
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            return (vec![words], at);
        }
    }
}

/// A module's path words, made absolute: `crate::a` → `a`, `super::b` in `x::y` → `x::b`,
/// `self::b` or a child `b` in `x` → `x::b`.
fn absolute(module: &str, path: &[String]) -> Vec<String> {
    let mut base: Vec<String> =
        module.split("::").filter(|word| !word.is_empty()).map(String::from).collect();
    let mut words = path;
    match words.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            words = &words[1..];
        }
        Some("self") => words = &words[1..],
        _ => {}
    }
    while words.first().is_some_and(|word| word == "super") {
        base.pop();
        words = &words[1..];
    }
    base.extend(words.iter().cloned());
    base
}

/// What one file says, read once: its paths and the names it re-exports.
struct Module {
    paths: Vec<Vec<String>>,
    /// `pub use a::B;` → `B` → `a::B` (absolute), so a path through this module reaches `a`.
    reexports: BTreeMap<String, Vec<String>>,
}

fn read_modules(sources: &BTreeMap<String, String>) -> BTreeMap<String, Module> {
    let children_of = |module: &str| -> BTreeSet<String> {
        let prefix = if module.is_empty() { String::new() } else { format!("{module}::") };
        sources
            .keys()
            .filter_map(|name| {
                name.strip_prefix(&prefix).filter(|rest| !rest.is_empty() && !rest.contains("::"))
            })
            .map(String::from)
            .collect()
    };
    sources
        .iter()
        .map(|(module, source)| {
            let code = code_of(source);
            let children = children_of(module);
            let paths: Vec<Vec<String>> =
                paths_in(&code, &children).iter().map(|path| absolute(module, path)).collect();
            let mut reexports = BTreeMap::new();
            for statement in code.split(';') {
                let statement = statement.trim_start();
                let Some(tree) = ["pub use ", "pub(crate) use ", "pub(super) use "]
                    .iter()
                    .find_map(|prefix| statement.strip_prefix(prefix))
                else {
                    continue;
                };
                let (trees, _) = use_tree(tree);
                for path in trees {
                    if let Some(name) = path.last().filter(|name| *name != "self") {
                        reexports.insert(name.clone(), absolute(module, &path));
                    }
                }
            }
            (module.clone(), Module { paths, reexports })
        })
        .collect()
}

/// The deepest module an absolute path names, following re-exports; `None` outside the crate.
fn resolve(modules: &BTreeMap<String, Module>, path: &[String], depth: usize) -> Option<String> {
    let mut current = String::new();
    for (index, word) in path.iter().enumerate() {
        let candidate =
            if current.is_empty() { word.clone() } else { format!("{current}::{word}") };
        if modules.contains_key(&candidate) {
            current = candidate;
            continue;
        }
        let reexported = modules.get(&current).and_then(|module| module.reexports.get(word));
        return match reexported {
            Some(target) if depth < 8 => {
                let mut rest = target.clone();
                rest.extend(path[index + 1..].iter().cloned());
                resolve(modules, &rest, depth + 1)
            }
            _ => Some(current),
        };
    }
    Some(current)
}

/// Each module (the crate root `""` included) → the modules it uses.
fn graph_of(sources: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let modules = read_modules(sources);
    let mut graph = BTreeMap::new();
    for (name, module) in &modules {
        let uses = module
            .paths
            .iter()
            .filter_map(|path| resolve(&modules, path, 0))
            .filter(|target| !target.is_empty() && target != name)
            .collect();
        graph.insert(name.clone(), uses);
    }
    graph
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = src();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let sources = files
        .iter()
        .filter_map(|file| {
            let name = module_name(&src, file)?;
            let source = fs::read_to_string(file).expect("a source file is UTF-8");
            Some((name, source))
        })
        .collect();
    graph_of(&sources)
}

/// The folders' order from docs/architecture.md: the first fenced block after "## The
/// layers", one layer a line, top first, each line's leading `folder/` or `file.rs` names.
/// `relay/` → `relay`, `outcome.rs` → `outcome`; the rank is the line's index (0 = top).
fn layers_from(doc: &str) -> BTreeMap<String, usize> {
    let section =
        doc.split("\n## The layers").nth(1).expect("docs/architecture.md has \"## The layers\"");
    let block =
        section.split("```").nth(1).expect("\"## The layers\" draws the order in a fenced block");
    let mut rank = BTreeMap::new();
    for (index, line) in block.lines().skip(1).filter(|line| !line.trim().is_empty()).enumerate() {
        let names = line.split_whitespace().map(|word| word.trim_end_matches(','));
        for name in names.take_while(|word| word.ends_with('/') || word.ends_with(".rs")) {
            let name = name.trim_end_matches('/').trim_end_matches(".rs").to_string();
            assert!(
                rank.insert(name.clone(), index).is_none(),
                "{name} is drawn twice in the layers"
            );
        }
    }
    rank
}

/// The folder (or root file) a module belongs to: `relay::copy` → `relay`.
fn folder(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// The edges from a folder to one drawn above it, as `(from, to)` modules.
fn upward_edges(
    graph: &BTreeMap<String, BTreeSet<String>>,
    rank: &BTreeMap<String, usize>,
) -> BTreeSet<(String, String)> {
    let rank_of = |module: &str| -> usize {
        *rank.get(folder(module)).unwrap_or_else(|| {
            panic!("src/{} is not drawn in docs/architecture.md's layers: {rank:?}", folder(module))
        })
    };
    let mut upward = BTreeSet::new();
    for (from, uses) in graph.iter().filter(|(from, _)| !from.is_empty()) {
        for to in uses {
            if rank_of(to) < rank_of(from) {
                upward.insert((from.clone(), to.clone()));
            }
        }
    }
    upward
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Search<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Search<'a> {
        fn visit(&mut self, module: &'a str) {
            let number = self.index.len();
            self.index.insert(module, number);
            self.low.insert(module, number);
            self.stack.push(module);
            for used in self.graph.get(module).into_iter().flatten() {
                let used = used.as_str();
                if !self.index.contains_key(used) {
                    self.visit(used);
                    let low = self.low[module].min(self.low[used]);
                    self.low.insert(module, low);
                } else if self.stack.contains(&used) {
                    let low = self.low[module].min(self.index[used]);
                    self.low.insert(module, low);
                }
            }
            if self.low[module] == self.index[module] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    component.push(member.to_string());
                    if member == module {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut search = Search {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for module in graph.keys() {
        if !search.index.contains_key(module.as_str()) {
            search.visit(module);
        }
    }
    search.found
}

/// What the layering rules find wrong in `graph` under `rank`, one line each.
fn layering_faults(
    graph: &BTreeMap<String, BTreeSet<String>>,
    rank: &BTreeMap<String, usize>,
    allowed: &[(&str, &str)],
    allowed_in_a_cycle: &[(&str, &str)],
) -> Vec<String> {
    let upward = upward_edges(graph, rank);
    let allowed: BTreeSet<(String, String)> =
        allowed.iter().map(|(from, to)| (from.to_string(), to.to_string())).collect();
    let mut faults = Vec::new();
    for (from, to) in upward.difference(&allowed) {
        faults.push(format!(
            "upward edge {from} → {to}: {} is drawn above {}",
            folder(to),
            folder(from)
        ));
    }
    for (from, to) in allowed.difference(&upward) {
        faults.push(format!(
            "{from} → {to} is allowed but no longer an upward edge: strike it from the list"
        ));
    }
    // The allowed edges are known faults; any other cycle is new.
    let mut rest = graph.clone();
    for (from, to) in &allowed {
        if let Some(uses) = rest.get_mut(from) {
            uses.remove(to);
        }
    }
    for &(from, to) in allowed_in_a_cycle {
        let removed = rest.get_mut(from).is_some_and(|uses| uses.remove(to));
        if !removed {
            let fault = "is allowed in a cycle but no longer an edge: strike it from the list";
            faults.push(format!("{from} → {to} {fault}"));
        }
    }
    for cycle in cycles(&rest) {
        faults.push(format!("import cycle: {}", cycle.join(", ")));
    }
    faults
}

#[test]
fn no_upward_edge_and_no_cycle_between_the_layers_the_doc_draws() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .expect("docs/architecture.md");
    let rank = layers_from(&doc);
    let graph = module_graph();
    assert!(graph.len() > 10, "the source was not found: {:?}", graph.keys());
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    let upward = upward_edges(&graph, &rank);
    println!("{} modules, {edges} edges, {} upward", graph.len(), upward.len());
    let mut in_src = BTreeSet::new();
    for name in fs::read_dir(src()).expect("src/").map(|entry| entry.expect("an entry").path()) {
        let stem = name.file_stem().expect("a name").to_string_lossy().into_owned();
        if stem != "lib" {
            assert!(
                rank.contains_key(&stem),
                "src/{stem} is not drawn in docs/architecture.md's layers"
            );
        }
        in_src.insert(stem);
    }
    for drawn in rank.keys() {
        assert!(in_src.contains(drawn), "docs/architecture.md draws {drawn}, which src/ has not");
    }
    let faults = layering_faults(&graph, &rank, ALLOWED_UPWARD, ALLOWED_IN_A_CYCLE);
    assert!(
        faults.is_empty(),
        "the layers of docs/architecture.md do not hold:\n{}",
        faults.join("\n")
    );
}

/// A small fake tree in which every rule is broken once.
fn fake_sources() -> BTreeMap<String, String> {
    let files = [
        ("", "mod top;\nmod low;\npub use low::Plain;\n"),
        ("top", "mod child;\nuse child::Helper;\npub struct Top;\n"),
        // A child that names its parent: a cycle the old test skipped.
        ("top::child", "use crate::top::Top;\npub struct Helper;\n"),
        // Up from the bottom layer, once through a `use` group and the root's re-export.
        (
            "low",
            "use crate::{Plain, top::Top};\n// crate::top::child in a comment is no edge\npub struct Plain;\n",
        ),
    ];
    files.iter().map(|(name, code)| (name.to_string(), code.to_string())).collect()
}

#[test]
fn the_checker_finds_every_kind_of_fault_in_a_fake_tree() {
    let graph = graph_of(&fake_sources());
    assert_eq!(graph["top"], BTreeSet::from(["top::child".to_string()]));
    assert_eq!(graph["top::child"], BTreeSet::from(["top".to_string()]));
    // `crate::Plain` is `low` itself through the root's re-export: no edge.
    assert_eq!(graph["low"], BTreeSet::from(["top".to_string()]));
    let rank =
        layers_from("# x\n\n## The layers\n\n```text\ntop/   the top\nlow.rs   the bottom\n```\n");
    assert_eq!(rank, BTreeMap::from([("top".to_string(), 0), ("low".to_string(), 1)]));
    let faults = layering_faults(&graph, &rank, &[("top", "low")], &[("low", "top::child")]);
    assert_eq!(
        faults,
        [
            "upward edge low → top: top is drawn above low",
            "top → low is allowed but no longer an upward edge: strike it from the list",
            "low → top::child is allowed in a cycle but no longer an edge: strike it from the list",
            "import cycle: top, top::child",
        ]
    );
    // Allowing the upward edge and the child's edge to its parent silences them, and
    // nothing else.
    let faults = layering_faults(&graph, &rank, &[("low", "top")], &[("top::child", "top")]);
    assert!(faults.is_empty(), "{faults:?}");
}

#[test]
fn the_checker_finds_a_cycle_when_there_is_one() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&graph), [["a", "b", "c"]]);
}
