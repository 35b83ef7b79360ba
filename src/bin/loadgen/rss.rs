//! The server's resident memory, read from `/proc/PID/status` once a second.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

/// Kibibytes, as `/proc` reports them.
pub struct Memory {
    pub start: u64,
    pub peak: u64,
    pub end: u64,
}

pub struct RssWatch {
    pid: u32,
    start: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl RssWatch {
    pub fn start(pid: u32) -> Self {
        let start = rss_kib(pid).unwrap_or(0);
        let peak = Arc::new(AtomicU64::new(start));
        let stop = Arc::new(AtomicBool::new(false));
        let (watch_peak, watch_stop) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !watch_stop.load(Ordering::Relaxed) {
                if let Some(now) = rss_kib(pid) {
                    watch_peak.fetch_max(now, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Self {
            pid,
            start,
            peak,
            stop,
        }
    }

    pub fn finish(self) -> Memory {
        self.stop.store(true, Ordering::Relaxed);
        let end = rss_kib(self.pid).unwrap_or(0);
        Memory {
            start: self.start,
            peak: self.peak.load(Ordering::Relaxed).max(end),
            end,
        }
    }
}
