//! The tables at the end of a bench run: the scenarios, the release files,
//! the first visit to `/login`, and the performance issue's targets.

use std::fmt::Write as _;

use crate::first_visit::FirstVisit;
use crate::size::FileSize;
use crate::stats::{ms, Summary};

/// Whether a figure reached its target, or could not be measured at all.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    NotMeasured,
}

/// One target row: what was measured, on which engine, against what.
pub struct Check {
    name: String,
    /// The database engine the row is for, or what else it depends on.
    engine: String,
    figure: String,
    wanted: String,
    verdict: Verdict,
}

impl Check {
    /// A measured figure, shown as `figure`, that `met` its target or not.
    pub fn measured(name: &str, engine: &str, figure: String, wanted: &str, met: bool) -> Self {
        Self {
            name: name.into(),
            engine: engine.into(),
            figure,
            wanted: wanted.into(),
            verdict: if met { Verdict::Met } else { Verdict::Missed },
        }
    }

    /// A row whose figure this run could not measure (a note says why).
    pub fn not_measured(name: &str, engine: &str, wanted: &str) -> Self {
        Self {
            name: name.into(),
            engine: engine.into(),
            figure: "-".into(),
            wanted: wanted.into(),
            verdict: Verdict::NotMeasured,
        }
    }

    fn verdict(&self) -> &'static str {
        match self.verdict {
            Verdict::Met => "MET",
            Verdict::Missed => "MISSED",
            Verdict::NotMeasured => "NOT MEASURED",
        }
    }
}

#[derive(Default)]
pub struct Report {
    /// The database and its durability, printed above the table.
    pub database: Option<String>,
    rows: Vec<Summary>,
    checks: Vec<Check>,
    notes: Vec<String>,
    pub sizes: Vec<FileSize>,
    pub first_visit: Option<FirstVisit>,
}

impl Report {
    /// Adds a scenario, and says so at once (a long run shows progress).
    pub fn add(&mut self, summary: &Summary) {
        let db_cpu = match summary.db_cpu {
            Some(_) => format!("  DB CPU {:>5} µs/req", summary.db_cpu_per_request()),
            None => String::new(),
        };
        eprintln!(
            "bench: {:<48} {:>9.0} req/s  p50 {:>7} ms  p99 {:>7} ms  server CPU {:>5} µs/req{db_cpu}  errors {}",
            summary.name,
            summary.per_second,
            ms(summary.p50),
            ms(summary.p99),
            summary.cpu_per_request(),
            summary.errors
        );
        self.rows.push(summary.clone());
    }

    pub fn check(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// A line printed under the targets.
    pub fn note(&mut self, note: &str) {
        self.notes.push(note.into());
    }

    /// Every target measured and met.
    pub fn all_met(&self) -> bool {
        self.checks.iter().all(|c| c.verdict == Verdict::Met)
    }

    pub fn print(&self) {
        print!("{}", self.markdown());
    }

    /// GitHub-flavoured Markdown: readable in a terminal, pasteable in docs.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        if let Some(database) = &self.database {
            let _ = writeln!(out, "Database: {database}\n");
        }
        self.scenarios(&mut out);
        if !self.sizes.is_empty() {
            let _ = writeln!(out, "\n| release file | raw KB | gzip KB | brotli KB |");
            let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
            for file in &self.sizes {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    file.name,
                    kb(file.raw),
                    kb(file.gzip),
                    kb(file.brotli)
                );
            }
        }
        if let Some(visit) = &self.first_visit {
            visit.markdown(&mut out);
        }
        let _ = writeln!(
            out,
            "\nTargets of the performance issue (these replace the README's earlier ones); KB = 1000 bytes:\n"
        );
        let _ = writeln!(out, "| target | engine | figure | wanted | verdict |");
        let _ = writeln!(out, "| --- | --- | ---: | --- | --- |");
        for check in &self.checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                check.name,
                check.engine,
                check.figure,
                check.wanted,
                check.verdict()
            );
        }
        let _ = writeln!(out);
        for note in &self.notes {
            let _ = writeln!(out, "Note: {note}");
        }
        let met = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::Met)
            .count();
        let unmeasured = self
            .checks
            .iter()
            .filter(|c| c.verdict == Verdict::NotMeasured)
            .count();
        let unmeasured = match unmeasured {
            0 => String::new(),
            n => format!(" ({n} not measured)"),
        };
        let _ = writeln!(
            out,
            "\nbench: {met} of {} targets met{unmeasured}",
            self.checks.len()
        );
        out
    }

    /// The measured scenarios, one row each.
    fn scenarios(&self, out: &mut String) {
        // The database's own CPU column only when it was measured (a
        // separate server); SQLite's work is in the server's column.
        let db = self.rows.iter().any(|r| r.db_cpu.is_some());
        let (db_head, db_rule) = if db {
            (" DB CPU µs/req |", " ---: |")
        } else {
            ("", "")
        };
        let _ = writeln!(
            out,
            "| scenario | requests | req/s | p50 ms | p99 ms | max ms | server CPU µs/req |{db_head} errors |"
        );
        let _ = writeln!(
            out,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |{db_rule} ---: |"
        );
        for row in &self.rows {
            let db_cell = if db {
                format!(" {} |", row.db_cpu_per_request())
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} | {} | {} |{db_cell} {} |",
                row.name,
                row.requests,
                row.per_second,
                ms(row.p50),
                ms(row.p99),
                ms(row.max),
                row.cpu_per_request(),
                row.errors
            );
        }
    }
}

/// Bytes as KB of 1000 bytes, one decimal.
pub fn kb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1000.0)
}
