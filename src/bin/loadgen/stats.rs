//! Latency histograms and counters, one recorder per worker, merged at the end.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;

/// Microseconds, from 1 µs to a minute, three significant figures.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

pub struct Recorder {
    latencies: Histogram<u64>,
    errors: u64,
    tallies: BTreeMap<&'static str, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            latencies: new_histogram(),
            errors: 0,
            tallies: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// Every request counts towards the latencies, failed ones too.
    pub fn record(&mut self, latency: Duration, ok: bool) {
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        self.latencies.saturating_record(micros);
        if !ok {
            self.errors += 1;
        }
    }

    /// Counts a named event (a reuse detection, a retry, ...).
    pub fn tally(&mut self, name: &'static str) {
        *self.tallies.entry(name).or_default() += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms with the same bounds merge");
        self.errors += other.errors;
        for (name, count) in other.tallies {
            *self.tallies.entry(name).or_default() += count;
        }
    }

    pub fn summary(&self, name: impl Into<String>, elapsed: Duration) -> Summary {
        let requests = self.latencies.len();
        let micros = |q: f64| Duration::from_micros(self.latencies.value_at_quantile(q));
        Summary {
            name: name.into(),
            requests,
            errors: self.errors,
            per_second: requests as f64 / elapsed.as_secs_f64().max(1e-9),
            p50: micros(0.50),
            p99: micros(0.99),
            max: Duration::from_micros(self.latencies.max()),
            tallies: self.tallies.clone(),
            server_cpu: None,
            db_cpu: None,
        }
    }
}

/// One scenario's figures.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub tallies: BTreeMap<&'static str, u64>,
    /// The server's CPU time over the measured window, when its pid is known.
    pub server_cpu: Option<Duration>,
    /// The database server's CPU time (all its processes), when measured.
    pub db_cpu: Option<Duration>,
}

impl Summary {
    /// Server CPU microseconds per measured request, as text ("-" unknown).
    pub fn cpu_per_request(&self) -> String {
        self.per_request(self.server_cpu)
    }

    /// Database CPU microseconds per measured request ("-" unknown).
    pub fn db_cpu_per_request(&self) -> String {
        self.per_request(self.db_cpu)
    }

    fn per_request(&self, cpu: Option<Duration>) -> String {
        match cpu {
            Some(cpu) if self.requests > 0 => {
                format!("{:.0}", cpu.as_secs_f64() * 1e6 / self.requests as f64)
            }
            _ => "-".into(),
        }
    }

    pub fn tally(&self, name: &str) -> u64 {
        self.tallies.get(name).copied().unwrap_or(0)
    }
}

/// Milliseconds with enough digits for loopback latencies.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.3}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}
