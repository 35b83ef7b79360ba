//! The one table at the end of a bench run, and its targets.

use std::fmt::Write as _;

use crate::size::FileSize;
use crate::stats::{ms, Summary};

/// A measured ratio or count against its target.
pub struct Check {
    name: String,
    value: f64,
    target: String,
    met: bool,
}

impl Check {
    pub fn at_least(name: &str, value: f64, min: f64) -> Self {
        Self::new(name, value, format!(">= {min}"), value >= min)
    }

    pub fn at_most(name: &str, value: f64, max: f64) -> Self {
        Self::new(name, value, format!("<= {max}"), value <= max)
    }

    pub fn below(name: &str, value: f64, limit: f64) -> Self {
        Self::new(name, value, format!("< {limit}"), value < limit)
    }

    fn new(name: &str, value: f64, target: String, met: bool) -> Self {
        Self {
            name: name.into(),
            value,
            target,
            met,
        }
    }

    fn verdict(&self) -> &'static str {
        if self.met {
            "MET"
        } else {
            "MISSED"
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

    pub fn note(&mut self, note: &str) {
        self.notes.push(note.into());
    }

    pub fn all_met(&self) -> bool {
        self.checks.iter().all(|c| c.met)
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
        if !self.sizes.is_empty() {
            let _ = writeln!(out, "\n| release file | raw KB | gzip KB | brotli KB |");
            let _ = writeln!(out, "| --- | ---: | ---: | ---: |");
            for file in &self.sizes {
                let kb = |bytes: u64| format!("{:.1}", bytes as f64 / 1000.0);
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
        let _ = writeln!(out, "\n| target | figure | wanted | verdict |");
        let _ = writeln!(out, "| --- | ---: | ---: | --- |");
        for check in &self.checks {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {} | {} |",
                check.name,
                check.value,
                check.target,
                check.verdict()
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "\nNote: {note}");
        }
        let met = self.checks.iter().filter(|c| c.met).count();
        let _ = writeln!(out, "\nbench: {met} of {} targets met", self.checks.len());
        out
    }
}
