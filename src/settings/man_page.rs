//! The manual page, `docs/tcprelay.1`, written from the same table and texts as `--help`,
//! so the two cannot disagree. A test compares the file with [`render`] and says how to
//! write it again when a setting changes: `TCPRELAY_BLESS=1 cargo test --lib man_page`.
//!
//! The page uses only the classic `man` macros (`.TH`, `.SH`, `.TP`, `.PP`, `.B`), which
//! every `man` renders: groff, mandoc, BusyBox's `man` with `nroff`.

use std::fmt::Write as _;

use crate::settings::cli::{ABOUT, INFO_FLAGS, NOTES, ROUTE_FLAGS};
use crate::settings::{SETTINGS, Scope, Setting};

/// The whole page, in roff.
pub fn render() -> String {
    let mut page = format!(
        // No hyphenation and a ragged right edge: flags and values must read as typed.
        ".TH TCPRELAY 1 \"\" \"tcprelay {}\" \"User Commands\"\n.nh\n.ad l\n",
        env!("CARGO_PKG_VERSION")
    );
    let (first_line, description) = ABOUT.split_once('\n').unwrap_or((ABOUT, ""));
    let _ = write!(page, ".SH NAME\ntcprelay \\- {}\n", escape(first_line.trim_end_matches('.')));
    page.push_str(SYNOPSIS);
    let _ = write!(page, ".SH DESCRIPTION\n{}\n", escape(description));
    page.push_str(".SH OPTIONS\n");
    for (flag, body) in ROUTE_FLAGS {
        page.push_str(&entry(flag, &escape(body)));
    }
    for setting in SETTINGS {
        page.push_str(&setting_entry(setting));
    }
    for (flag, body) in INFO_FLAGS {
        page.push_str(&entry(flag, &escape(body)));
    }
    let _ = write!(page, ".PP\n{}\n", escape(NOTES));
    page.push_str(REST);
    page
}

/// How to run it: the forms of `--help`'s "Usage", one per line.
const SYNOPSIS: &str = r#".SH SYNOPSIS
.B tcprelay
\fB\-\-listen\fR \fIADDR\fR \fB\-\-upstream\fR \fIADDR\fR [\fIoptions\fR]
.br
.B tcprelay
\fB\-\-route\fR \fILISTEN\fR=\fIUPSTREAM\fR[,\fIUPSTREAM\fR...] [\fB\-\-route\fR ...] [\fIoptions\fR]
.br
.B tcprelay
\fB\-\-config\fR \fIFILE\fR [\fB\-\-check\fR] [\fIoptions\fR]
.br
.B tcprelay
\fBreload\fR|\fBdrain\fR|\fBstatus\fR (\fB\-\-admin\fR \fIADDR\fR | \fB\-\-config\fR \fIFILE\fR)
.br
.B tcprelay demo
"#;

/// The sections after the options: what the exit codes mean and where to read more.
const REST: &str = r#".SH SUBCOMMANDS
.TP
\fBreload\fR, \fBdrain\fR, \fBstatus\fR
ask a running relay, through its admin endpoint, to read its config file again, to drain
(stop accepting, let live connections finish, exit), or to report its routes and upstreams;
\fBtcprelay status \-\-help\fR tells the options.
.TP
\fBdemo\fR
run a self\-contained demonstration on loopback.
.SH EXIT STATUS
.TP
.B 0
after a drain, or a successful \fB\-\-check\fR.
.TP
.B 1
a listener could not be bound (the message names the address), or the demo failed.
.TP
.B 2
a usage or configuration mistake; the message names the flag, value, or
\fIFILE\fR:\fILINE\fR:\fICOLUMN\fR.
.SH SEE ALSO
\fIdocs/operations.md\fR (the config file, logs, metrics, the admin endpoint, systemd) and
\fIREADME.md\fR in the source, which this page is generated beside.
"#;

/// One option: the flag line in bold with its value in italics, then the text.
fn entry(flag: &str, body: &str) -> String {
    format!(".TP\n{}\n{body}\n", flag_line(flag))
}

/// `-l, --listen ADDR` as `\fB\-l\fR, \fB\-\-listen\fR \fIADDR\fR`.
fn flag_line(flag: &str) -> String {
    let (names, value): (Vec<&str>, Vec<&str>) =
        flag.split_whitespace().partition(|word| word.starts_with('-'));
    let names: Vec<String> = names
        .iter()
        .map(|name| format!("\\fB{}\\fR", name.trim_end_matches(',').replace('-', "\\-")))
        .collect();
    let value = match value.join(" ") {
        value if value.is_empty() => value,
        value => format!(" \\fI{}\\fR", escape(&value)),
    };
    format!("{}{value}", names.join(", "))
}

/// A setting: its flag and value, what it does, its values, where it applies and its default.
fn setting_entry(setting: &Setting) -> String {
    let flag = match setting.value {
        "" => setting.flag(),
        value => format!("{} {value}", setting.flag()),
    };
    let flag = match setting.short {
        Some(short) => format!("{short}, {flag}"),
        None => flag,
    };
    let scope = match setting.scope {
        Scope::Process => "once per process",
        Scope::Route => "global, or per route",
        Scope::RouteOnly => "per route",
    };
    let list = if setting.list { "; repeatable" } else { "" };
    let mut body = format!("{}.\nValues: {}{list}.\n", setting.help, setting.limits);
    let _ = write!(body, "Config key: {} ({scope})", setting.name);
    if !matches!(setting.default, "none" | "everyone" | "nobody") {
        let _ = write!(body, "; default: {}", setting.default);
    }
    body.push('.');
    entry(&flag, &escape(&body))
}

/// Text as roff prints it: a backslash written as `\e`, and a line that starts with `.` or
/// `'` (which roff would read as a request) guarded by `\&`.
fn escape(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = line.replace('\\', "\\e");
            match line.starts_with(['.', '\'']) {
                true => format!("\\&{line}"),
                false => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_an_entry_and_nothing_reads_as_a_request() {
        let page = render();
        for setting in SETTINGS {
            let flag = setting.flag().replace('-', "\\-");
            assert!(page.contains(&format!("\\fB{flag}\\fR")), "{} missing", setting.name);
        }
        for line in page.lines() {
            let request = line.starts_with(['.', '\'']);
            let known = [".TH", ".nh", ".ad", ".SH", ".TP", ".PP", ".B", ".br"];
            assert!(!request || known.iter().any(|r| line.split(' ').next() == Some(r)), "{line}");
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(escape("a\\b"), "a\\eb");
        assert_eq!(escape(".x\n'y\nz"), "\\&.x\n\\&'y\nz");
        assert_eq!(
            flag_line("-l, --listen ADDR"),
            "\\fB\\-l\\fR, \\fB\\-\\-listen\\fR \\fIADDR\\fR"
        );
    }

    /// The file is what [`render`] writes today. `TCPRELAY_BLESS=1` writes it.
    #[test]
    fn the_man_page_is_generated_from_the_settings_table() {
        let page = render();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/tcprelay.1");
        if std::env::var_os("TCPRELAY_BLESS").is_some() {
            std::fs::write(&path, &page)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == page,
            "docs/tcprelay.1 is stale or missing: write it again from the settings table with\n\
             \n    TCPRELAY_BLESS=1 cargo test --lib man_page\n\nand commit it"
        );
    }
}
