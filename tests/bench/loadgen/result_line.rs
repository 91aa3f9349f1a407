//! The machine-readable result of one workload run: a single line of
//! `key=value` fields, e.g.
//!
//! ```text
//! bench-result workload=bulk-up streams=1 secs=3.00 bytes=4123456789 gbit_s=10.99
//! ```
//!
//! The runner script prefixes `candidate=NAME round=N` and appends every line
//! to one file; `summarize` reads them back. Values never contain spaces,
//! except `error=`, which is always last and runs to the end of the line.

use std::collections::BTreeMap;
use std::fmt::Display;

/// The word every result line starts with, so a script can pick the line out
/// of other output.
pub const MARKER: &str = "bench-result";

/// A result being built: fields in the order they were added.
pub struct Measurement {
    fields: Vec<(String, String)>,
}

impl Measurement {
    /// A result for `workload`.
    pub fn new(workload: &str) -> Measurement {
        let mut measurement = Measurement { fields: Vec::new() };
        measurement.push("workload", workload);
        measurement
    }

    /// A failed run: `ok=false` and the error's message after the fields
    /// already pushed (the workload's name and shape).
    pub fn fail(mut self, error: &dyn Display) -> Measurement {
        self.push("ok", false);
        self.push("error", error.to_string().replace('\n', " "));
        self
    }

    /// Adds a field; `key` must be one word.
    pub fn push(&mut self, key: &str, value: impl Display) {
        self.fields.push((key.to_string(), value.to_string()));
    }

    /// Adds a number with a fixed count of decimals.
    pub fn push_number(&mut self, key: &str, value: f64, decimals: usize) {
        self.push(key, format!("{value:.decimals$}"));
    }

    /// Whether the run succeeded: no `ok=false` field.
    pub fn is_ok(&self) -> bool {
        !self.fields.iter().any(|(k, v)| k == "ok" && v == "false")
    }

    /// The line, starting with `MARKER`.
    pub fn line(&self) -> String {
        let mut line = MARKER.to_string();
        for (key, value) in &self.fields {
            line.push(' ');
            line.push_str(key);
            line.push('=');
            line.push_str(value);
        }
        line
    }
}

/// A result line read back: its fields by name.
#[derive(Debug)]
pub struct ResultLine {
    fields: BTreeMap<String, String>,
}

impl ResultLine {
    /// Parses one line; words without `=` (like `MARKER`) are skipped.
    /// Returns `None` for a line with no `workload=` field.
    pub fn parse(line: &str) -> Option<ResultLine> {
        let mut fields = BTreeMap::new();
        let (line, error) = match line.find(" error=") {
            Some(at) => (&line[..at], Some(line[at + " error=".len()..].trim())),
            None => (line, None),
        };
        for word in line.split_whitespace() {
            if let Some((key, value)) = word.split_once('=') {
                fields.insert(key.to_string(), value.to_string());
            }
        }
        if let Some(error) = error {
            fields.insert("error".to_string(), error.to_string());
        }
        fields.contains_key("workload").then_some(ResultLine { fields })
    }

    /// A field's text.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A field as a number.
    pub fn number(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// Whether the run succeeded (a line without `ok=` counts as success).
    pub fn ok(&self) -> bool {
        self.get("ok") != Some("false")
    }
}
