//! Turns result lines from many rounds into one markdown table: a row per
//! workload figure, a column per candidate, each cell the median over rounds
//! with the min–max range, the best relay's median in bold.

use crate::result_line::ResultLine;
use crate::stats::median_min_max;
use std::collections::BTreeSet;

/// Whether a larger or a smaller figure wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

/// One figure of one workload, as a table row.
struct Figure {
    workload: &'static str,
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
}

const fn figure(
    workload: &'static str,
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
) -> Figure {
    Figure { workload, key, label, unit, better }
}

/// The rows of the table, in order. Workloads measured by the load generator
/// come first, then the real clients run by peers.sh (iperf3, redis-benchmark).
const FIGURES: &[Figure] = &[
    figure("bulk-up", "gbit_s", "bulk upload", "Gbit/s", Better::Higher),
    figure("bulk-down", "gbit_s", "bulk download", "Gbit/s", Better::Higher),
    figure("bulk-up", "cpu_s_per_gib", "relay CPU per GiB, upload", "s", Better::Lower),
    figure("bulk-down", "cpu_s_per_gib", "relay CPU per GiB, download", "s", Better::Lower),
    figure("ping-pong", "p50_us", "ping-pong latency p50", "µs", Better::Lower),
    figure("ping-pong", "p99_us", "ping-pong latency p99", "µs", Better::Lower),
    figure("ping-pong", "p999_us", "ping-pong latency p99.9", "µs", Better::Lower),
    figure("keep-alive", "req_s", "keep-alive request rate", "req/s", Better::Higher),
    figure("connection-rate", "conn_s", "connection rate", "conn/s", Better::Higher),
    figure("idle", "rss_kib_per_conn", "idle: RSS per connection", "KiB", Better::Lower),
    figure(
        "idle-after-bulk",
        "rss_kib_per_conn",
        "idle after a quarter moved 4 MiB: RSS per connection",
        "KiB",
        Better::Lower,
    ),
    figure(
        "idle",
        "system_kib_per_conn",
        "idle: system memory per connection (RSS + KernelStack + Slab)",
        "KiB",
        Better::Lower,
    ),
    figure(
        "idle-after-bulk",
        "system_kib_per_conn",
        "idle after bulk: system memory per connection",
        "KiB",
        Better::Lower,
    ),
    figure(
        "idle",
        "kernel_stack_kib_per_conn",
        "idle: KernelStack per connection",
        "KiB",
        Better::Lower,
    ),
    figure("idle", "slab_kib_per_conn", "idle: Slab per connection", "KiB", Better::Lower),
    figure("idle", "pss_kib_per_conn", "idle: PSS per connection", "KiB", Better::Lower),
    figure("idle", "threads_per_conn", "idle: threads per connection", "", Better::Lower),
    figure("iperf3-up", "gbit_s", "iperf3 upload", "Gbit/s", Better::Higher),
    figure("iperf3-down", "gbit_s", "iperf3 download (-R)", "Gbit/s", Better::Higher),
    figure("redis-ping", "p50_ms", "redis-benchmark PING p50", "ms", Better::Lower),
    figure("redis-ping", "p99_ms", "redis-benchmark PING p99", "ms", Better::Lower),
    figure("redis-keep-alive", "rps", "redis-benchmark PING rate", "req/s", Better::Higher),
    figure(
        "redis-connection-rate",
        "rps",
        "redis-benchmark PING rate, -k 0",
        "req/s",
        Better::Higher,
    ),
];

/// Fields that tell two rows of one workload apart (1 stream vs 4 streams).
const SHAPE_KEYS: [&str; 4] = ["streams", "connections", "workers", "clients"];

/// The baseline column: not a relay, so never marked best.
const DIRECT: &str = "direct";

/// Renders the table for every line that has a `candidate=` field.
pub fn markdown_table(lines: &[ResultLine]) -> String {
    let candidates = candidates_in_order(lines);
    let mut table = String::new();
    table.push_str("| workload | unit |");
    for candidate in &candidates {
        table.push_str(&format!(" {candidate} |"));
    }
    table.push_str("\n|---|---|");
    for _ in &candidates {
        table.push_str("---:|");
    }
    table.push('\n');
    for figure in FIGURES {
        for shape in shapes_of(lines, figure) {
            let row = row(lines, figure, &shape, &candidates);
            if row.iter().all(|cell| cell.is_none()) {
                continue;
            }
            table.push_str(&format!("| {} | {} |", row_label(figure, &shape), figure.unit));
            let best = best_median(&candidates, &row, figure.better);
            for cell in &row {
                let text = match cell {
                    None => "–".to_string(),
                    Some(cell) => cell.render(best),
                };
                table.push_str(&format!(" {text} |"));
            }
            table.push('\n');
        }
    }
    table
}

/// Candidates in order of first appearance, with the direct baseline first.
fn candidates_in_order(lines: &[ResultLine]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for line in lines {
        if let Some(candidate) = line.get("candidate")
            && !order.iter().any(|c| c == candidate)
        {
            order.push(candidate.to_string());
        }
    }
    order.sort_by_key(|candidate| candidate != DIRECT);
    order
}

/// One row's shape: the values of `SHAPE_KEYS` a line has, in that order.
type Shape = Vec<(&'static str, String)>;

fn shape_of(line: &ResultLine) -> Shape {
    SHAPE_KEYS
        .iter()
        .filter_map(|&key| line.get(key).map(|value| (key, value.to_string())))
        .collect()
}

/// Every distinct shape measured for `figure`'s workload, smallest first.
fn shapes_of(lines: &[ResultLine], figure: &Figure) -> Vec<Shape> {
    let shapes: BTreeSet<Vec<(u64, &'static str, String)>> = lines
        .iter()
        .filter(|line| line.get("workload") == Some(figure.workload))
        .map(|line| {
            shape_of(line)
                .into_iter()
                .map(|(key, value)| (value.parse().unwrap_or(0), key, value))
                .collect()
        })
        .collect();
    shapes
        .into_iter()
        .map(|shape| shape.into_iter().map(|(_, key, value)| (key, value)).collect())
        .collect()
}

fn row_label(figure: &Figure, shape: &Shape) -> String {
    if shape.is_empty() {
        return figure.label.to_string();
    }
    let shape: Vec<String> = shape.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{} ({})", figure.label, shape.join(", "))
}

/// One cell: the runs of one candidate for one row.
struct Cell {
    /// Median, min and max over successful runs, if any.
    spread: Option<(f64, f64, f64)>,
    runs: usize,
    failed: usize,
    errors: u64,
    /// For idle runs that failed: the fewest connections opened before it.
    opened: Option<u64>,
}

impl Cell {
    fn render(&self, best: Option<f64>) -> String {
        let mut text = match self.spread {
            None => match self.opened {
                Some(opened) => format!("failed after {opened}"),
                None => "failed".to_string(),
            },
            Some((median, min, max)) => {
                let median_text = format_number(median);
                let median_text =
                    if best == Some(median) { format!("**{median_text}**") } else { median_text };
                if self.runs - self.failed > 1 {
                    format!("{median_text} ({}–{})", format_number(min), format_number(max))
                } else {
                    median_text
                }
            }
        };
        if self.failed > 0 && self.spread.is_some() {
            text.push_str(&format!(" [{} of {} failed]", self.failed, self.runs));
        }
        if self.errors > 0 {
            text.push_str(&format!(" [{} conn errors]", self.errors));
        }
        text
    }
}

fn row(
    lines: &[ResultLine],
    figure: &Figure,
    shape: &Shape,
    candidates: &[String],
) -> Vec<Option<Cell>> {
    candidates
        .iter()
        .map(|candidate| {
            let runs: Vec<&ResultLine> = lines
                .iter()
                .filter(|line| {
                    line.get("candidate") == Some(candidate.as_str())
                        && line.get("workload") == Some(figure.workload)
                        && &shape_of(line) == shape
                })
                .collect();
            let failed = runs.iter().filter(|line| !line.ok()).count();
            let mut values: Vec<f64> = runs
                .iter()
                .filter(|line| line.ok())
                .filter_map(|line| line.number(figure.key))
                .collect();
            if values.is_empty() && failed == 0 {
                // Not measured for this candidate (the direct baseline has no
                // relay CPU, for instance).
                return None;
            }
            let errors = runs.iter().filter_map(|l| l.number("errors")).sum::<f64>() as u64;
            let opened = runs
                .iter()
                .filter(|line| !line.ok())
                .filter_map(|line| line.number("opened"))
                .min_by(f64::total_cmp)
                .map(|n| n as u64);
            Some(Cell {
                spread: median_min_max(&mut values),
                runs: runs.len(),
                failed,
                errors,
                opened,
            })
        })
        .collect()
}

/// The winning median among the relays (not the direct baseline), when at
/// least two relays have one: with a single relay there is no contest.
fn best_median(candidates: &[String], row: &[Option<Cell>], better: Better) -> Option<f64> {
    let medians: Vec<f64> = candidates
        .iter()
        .zip(row)
        .filter(|(candidate, _)| candidate.as_str() != DIRECT)
        .filter_map(|(_, cell)| cell.as_ref()?.spread.map(|(median, _, _)| median))
        .collect();
    if medians.len() < 2 {
        return None;
    }
    let medians = medians.into_iter();
    match better {
        Better::Higher => medians.max_by(f64::total_cmp),
        Better::Lower => medians.min_by(f64::total_cmp),
    }
}

/// Three significant digits or so, without scientific notation.
fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}
