//! Bounded workers: every loop stops at a deadline or when the shared
//! request budget runs out, whichever comes first.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::cpu::{cpu_time, family_cpu_time};
use crate::stats::{Recorder, Summary};

/// How long a scenario runs and at most how many requests it sends.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub warmup: Duration,
    pub measure: Duration,
    pub max_requests: i64,
    /// The server process, whose CPU time during the measured window is
    /// charged to the scenario's requests.
    pub server_pid: Option<u32>,
    /// A database server's main process (PostgreSQL's postmaster): its
    /// CPU time and its children's, charged the same way.
    pub db_pid: Option<u32>,
}

/// One worker's view of the budget. With a `period` the worker is paced
/// (open loop): latency counts from the moment a request was due, so a
/// stalled server can't hide its stall by slowing the generator down.
pub struct Lane {
    measured_from: Instant,
    deadline: Instant,
    remaining: Arc<AtomicI64>,
    period: Option<Duration>,
    next_due: Instant,
}

impl Lane {
    /// The moment the next request starts (or was due), or None when done.
    pub async fn next(&mut self) -> Option<Instant> {
        let start = match self.period {
            None => Instant::now(),
            Some(period) => {
                let due = self.next_due;
                self.next_due += period;
                tokio::time::sleep_until(due.into()).await;
                due
            }
        };
        if start >= self.deadline || self.remaining.fetch_sub(1, Ordering::Relaxed) <= 0 {
            return None;
        }
        Some(start)
    }

    /// Records a finished request unless it started during the warm-up.
    pub fn record(&self, recorder: &mut Recorder, start: Instant, ok: bool) {
        if start >= self.measured_from {
            recorder.record(start.elapsed(), ok);
        }
    }

    /// Whether a request that started at `start` counts.
    pub fn counts(&self, start: Instant) -> bool {
        start >= self.measured_from
    }
}

/// Runs one task per worker state until the budget is spent, then merges
/// their recorders. `period` paces each worker; None runs flat out.
pub async fn run<S, F, Fut>(
    name: &str,
    workers: Vec<S>,
    budget: Budget,
    period: Option<Duration>,
    body: F,
) -> (Summary, Vec<S>)
where
    S: Send + 'static,
    F: Fn(S, Lane) -> Fut,
    Fut: Future<Output = (S, Recorder)> + Send + 'static,
{
    let begin = Instant::now();
    let measured_from = begin + budget.warmup;
    let deadline = measured_from + budget.measure;
    let remaining = Arc::new(AtomicI64::new(budget.max_requests));
    let count = workers.len().max(1) as u32;
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, state)| {
            // Paced workers start spread over one period, not in lockstep.
            let offset = period.map_or(Duration::ZERO, |p| p * i as u32 / count);
            let lane = Lane {
                measured_from,
                deadline,
                remaining: remaining.clone(),
                period,
                next_due: begin + offset,
            };
            tokio::spawn(body(state, lane))
        })
        .collect();
    // The server's (and the database's) CPU clock at the end of the warm-up.
    let cpu_at_start = budget.server_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measured_from.into()).await;
            cpu_time(pid)
        })
    });
    let db_cpu_at_start = budget.db_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measured_from.into()).await;
            family_cpu_time(pid)
        })
    });
    let mut merged = Recorder::default();
    let mut states = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (state, recorder) = task.await.expect("a load worker panicked");
        merged.merge(recorder);
        states.push(state);
    }
    let measured = Instant::now()
        .min(deadline)
        .saturating_duration_since(measured_from);
    let mut summary = merged.summary(name, measured);
    if let (Some(pid), Some(start)) = (budget.server_pid, cpu_at_start) {
        if let (Ok(Some(start)), Some(end)) = (start.await, cpu_time(pid)) {
            summary.server_cpu = Some(end.saturating_sub(start));
        }
    }
    if let (Some(pid), Some(start)) = (budget.db_pid, db_cpu_at_start) {
        if let (Ok(Some(start)), Some(end)) = (start.await, family_cpu_time(pid)) {
            summary.db_cpu = Some(end.saturating_sub(start));
        }
    }
    (summary, states)
}
