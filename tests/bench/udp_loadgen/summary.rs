//! Turns the result lines of tests/bench/udp.sh (each prefixed with
//! `round=N candidate=NAME load1=L`) into the markdown tables of
//! docs/benchmarks.md: one row per workload shape, one column per candidate
//! in the order they ran, each cell the median of the rounds. Under each
//! table, the machine's 1-minute load average during its runs, because the
//! machine is shared and a figure means little without it.

use crate::result_line::ResultLine;
use crate::stats::median_min_max;
use std::fmt::Write;

/// A table: which lines it takes, how a line names its row, and how the
/// rounds of one cell read.
struct Table {
    title: &'static str,
    workload: &'static str,
    mode: Option<&'static str>,
    row: fn(&ResultLine) -> String,
    cell: fn(&[&ResultLine]) -> String,
}

/// All the tables, for the lines in `text`.
pub fn tables(text: &str) -> String {
    let lines: Vec<ResultLine> = text.lines().filter_map(ResultLine::parse).collect();
    let mut candidates: Vec<String> = Vec::new();
    for line in &lines {
        if let Some(c) = line.get("candidate").filter(|c| !candidates.iter().any(|k| k == c)) {
            candidates.push(c.to_string());
        }
    }
    let all = [
        Table {
            title: "Datagrams per second, as fast as each relay goes (32 unanswered per flow): echoes received per second · loss",
            workload: "flood",
            mode: Some("window"),
            row: |l| format!("{} flow(s) × {} B", field(l, "flows"), field(l, "size")),
            cell: |runs| {
                format!(
                    "{} · {} %",
                    spread(runs, "pps", thousands),
                    spread(runs, "loss_pct", decimal)
                )
            },
        },
        Table {
            title: "What an echo (one datagram each way) costs the relay, in the windowed runs above: CPU µs · context switches; then datagrams the kernel dropped at full receive buffers (any socket)",
            workload: "flood",
            mode: Some("window"),
            row: |l| format!("{} flow(s) × {} B", field(l, "flows"), field(l, "size")),
            cell: |runs| {
                format!(
                    "{} · {}; {}",
                    spread(runs, "relay_cpu_us_per_echo", decimal),
                    decimal(median(runs, "relay_switches_per_echo")),
                    thousands(median(runs, "rcvbuf_errors"))
                )
            },
        },
        Table {
            title: "Loss at the same offered load (every flow sends on a clock): loss · echoes received per second",
            workload: "flood",
            mode: Some("rate"),
            row: |l| {
                format!(
                    "{} flow(s) × {} B at {}/s",
                    field(l, "flows"),
                    field(l, "size"),
                    thousands(l.number("offered_pps").unwrap_or(0.0))
                )
            },
            cell: |runs| {
                format!(
                    "{} % · {}",
                    spread(runs, "loss_pct", decimal),
                    thousands(median(runs, "pps"))
                )
            },
        },
        Table {
            title: "Order and isolation, summed over every flood run: echoes out of order within their flow · echoes that reached another flow (a relay must show 0 · 0)",
            workload: "flood",
            mode: None,
            row: |_| "all floods".to_string(),
            cell: |runs| {
                format!(
                    "{} · {}",
                    thousands(total(runs, "reordered")),
                    thousands(total(runs, "foreign"))
                )
            },
        },
        Table {
            title: "DNS round trip (dnsmasq upstream), one query at a time: p50 / p99 in µs · lost",
            workload: "dns",
            mode: None,
            row: |l| match l.get("sockets") {
                Some("per-query") => {
                    format!("{} queries, a new socket (flow) each, like dig", field(l, "queries"))
                }
                _ => format!("{} queries from one socket", field(l, "queries")),
            },
            cell: |runs| {
                format!(
                    "{} / {} · {}",
                    median(runs, "p50_us"),
                    median(runs, "p99_us"),
                    median(runs, "lost")
                )
            },
        },
        Table {
            title: "Memory per idle flow (PSS over the relay's processes, after one datagram and its echo per flow, then 3 s of silence): KiB per flow · threads · processes · flows answered (of them in the first burst, all at once)",
            workload: "idle",
            mode: None,
            row: |l| format!("{} idle flows", field(l, "flows")),
            cell: |runs| {
                format!(
                    "{} · {} · {} · {} ({})",
                    decimal(median(runs, "pss_kib_per_flow")),
                    median(runs, "threads_after"),
                    median(runs, "processes_after"),
                    median(runs, "answered"),
                    median(runs, "burst_answered")
                )
            },
        },
    ];
    let mut out = String::new();
    for table in &all {
        let chosen: Vec<&ResultLine> = lines
            .iter()
            .filter(|l| {
                l.get("workload") == Some(table.workload)
                    && (table.mode.is_none() || l.get("mode") == table.mode)
            })
            .collect();
        if !chosen.is_empty() {
            write_table(&mut out, table, &chosen, &candidates);
        }
    }
    out
}

fn write_table(out: &mut String, table: &Table, lines: &[&ResultLine], candidates: &[String]) {
    let mut rows: Vec<String> = Vec::new();
    for line in lines {
        let row = (table.row)(line);
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    let _ = writeln!(out, "{}\n", table.title);
    let _ = writeln!(out, "| | {} |", candidates.join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(candidates.len()));
    for row in &rows {
        let mut cells = Vec::new();
        for candidate in candidates {
            let runs: Vec<&ResultLine> = lines
                .iter()
                .copied()
                .filter(|l| l.get("candidate") == Some(candidate) && (table.row)(l) == *row)
                .collect();
            let ok: Vec<&ResultLine> = runs.iter().copied().filter(|l| l.ok()).collect();
            cells.push(match (runs.len(), ok.len()) {
                (0, _) => "–".to_string(),
                (n, 0) => format!("failed ({n} of {n})"),
                (n, k) if k < n => format!("{} ({} of {n} failed)", (table.cell)(&ok), n - k),
                _ => (table.cell)(&ok),
            });
        }
        let _ = writeln!(out, "| {row} | {} |", cells.join(" | "));
    }
    let mut loads: Vec<f64> = lines.iter().filter_map(|l| l.number("load1")).collect();
    if let Some((_, low, high)) = median_min_max(&mut loads) {
        let _ = writeln!(out, "\nLoad average (1 min) during these runs: {low:.2} to {high:.2}.");
    }
    out.push('\n');
}

fn field<'a>(line: &'a ResultLine, key: &str) -> &'a str {
    line.get(key).unwrap_or("?")
}

fn median(runs: &[&ResultLine], key: &str) -> f64 {
    let mut values: Vec<f64> = runs.iter().filter_map(|l| l.number(key)).collect();
    median_min_max(&mut values).map_or(f64::NAN, |(m, _, _)| m)
}

/// The sum of `key` over the runs.
fn total(runs: &[&ResultLine], key: &str) -> f64 {
    runs.iter().filter_map(|l| l.number(key)).sum()
}

/// "median (min–max)" of `key`, each written by `show`; "–" if no run has it.
fn spread(runs: &[&ResultLine], key: &str, show: fn(f64) -> String) -> String {
    let mut values: Vec<f64> = runs.iter().filter_map(|l| l.number(key)).collect();
    match median_min_max(&mut values) {
        None => "–".to_string(),
        Some((m, low, high)) if low == high => show(m),
        Some((m, low, high)) => format!("{} ({}–{})", show(m), show(low), show(high)),
    }
}

fn decimal(value: f64) -> String {
    if value.is_nan() {
        "–".to_string()
    } else if value < 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// 1234567 → "1,234,567".
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
