//! The server's CPU time (all threads, user plus system), read from
//! `/proc/PID/stat`, so a scenario can say what one request costs the server
//! and not only how long it took.

use std::time::Duration;

/// Linux reports `utime` and `stime` in USER_HZ ticks, 100 a second on
/// every architecture Rust targets.
const TICKS_PER_SECOND: u64 = 100;

pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it don't.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (user + system) * 1000 / TICKS_PER_SECOND,
    ))
}
