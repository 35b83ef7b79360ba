//! The server's CPU time (all threads, user plus system), read from
//! `/proc/PID/stat`, so a scenario can say what one request costs the server
//! and not only how long it took. For a database server made of processes
//! (PostgreSQL: a postmaster and a backend per connection), the same for
//! the whole family.

use std::time::Duration;

/// Linux reports `utime` and `stime` in USER_HZ ticks, 100 a second on
/// every architecture Rust targets.
const TICKS_PER_SECOND: u64 = 100;

/// The fields of `/proc/PID/stat` after the command name: state is [0],
/// the parent's pid [1], utime [11], stime [12], cutime [13], cstime [14].
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it don't.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // The state is a letter; keep its place so the indices stay the same.
    Some(
        after_name
            .split_whitespace()
            .take(15)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

fn ticks(ticks: u64) -> Duration {
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

pub fn cpu_time(pid: u32) -> Option<Duration> {
    let fields = stat_fields(pid)?;
    Some(ticks(fields.get(11)? + fields.get(12)?))
}

/// CPU time of `pid`, of its live children, and of the children it has
/// reaped (cutime and cstime): a child that exits between two readings
/// moves from the second term to the third, so nothing is lost or counted
/// twice. Grandchildren are not read (PostgreSQL has none).
pub fn family_cpu_time(pid: u32) -> Option<Duration> {
    let parent = stat_fields(pid)?;
    let mut total = parent.get(11)? + parent.get(12)? + parent.get(13)? + parent.get(14)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(fields) = stat_fields(child) {
            if fields.get(1) == Some(&u64::from(pid)) {
                total += fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
            }
        }
    }
    Some(ticks(total))
}
