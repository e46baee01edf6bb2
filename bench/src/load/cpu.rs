//! CPU time per thread of a process, from `/proc/<pid>/task/*/stat`: read before and
//! after a run, it says where a server spent the run (its store thread, its event loop,
//! its I/O workers) without a profiler.

use std::collections::BTreeMap;

use serde::Serialize;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks by thread name at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot(BTreeMap<String, u64>);

/// CPU seconds one group of threads used during a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct ThreadTime {
    /// The thread name (threads of one name are summed).
    pub(crate) thread: String,
    /// CPU seconds used.
    pub(crate) seconds: f64,
}

/// Reads every thread's user and system time; threads that vanish mid-read are skipped.
pub(crate) fn snapshot(pid: u32) -> Snapshot {
    let mut ticks = BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Snapshot(ticks);
    };
    for task in tasks.flatten() {
        let path = task.path();
        let (Ok(stat), Ok(comm)) = (
            std::fs::read_to_string(path.join("stat")),
            std::fs::read_to_string(path.join("comm")),
        ) else {
            continue;
        };
        if let Some(used) = cpu_ticks(&stat) {
            *ticks.entry(comm.trim().to_owned()).or_default() += used;
        }
    }
    Snapshot(ticks)
}

/// utime + stime of a `stat` line; the fields after the parenthesised command name.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// What each thread group used between two snapshots, busiest first.
pub(crate) fn used(before: &Snapshot, after: &Snapshot) -> Vec<ThreadTime> {
    let mut used: Vec<ThreadTime> = after
        .0
        .iter()
        .map(|(thread, &ticks)| ThreadTime {
            thread: thread.clone(),
            seconds: ticks.saturating_sub(before.0.get(thread).copied().unwrap_or(0)) as f64
                / TICKS_PER_SECOND,
        })
        .filter(|t| t.seconds > 0.0)
        .collect();
    used.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    used
}

#[cfg(test)]
mod tests {
    use super::{Snapshot, cpu_ticks, used};

    #[test]
    fn user_and_system_ticks_are_read_past_the_command_name() {
        let stat = "1234 (tokio-rt (x) worker) S 1 1234 1234 0 -1 4194368 100 0 0 0 250 40 0 0 20 0 4 0 1 0 0";
        assert_eq!(cpu_ticks(stat), Some(290));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn usage_is_the_difference_busiest_first() {
        let before = Snapshot([("store".to_owned(), 100), ("worker".to_owned(), 50)].into());
        let after = Snapshot(
            [
                ("store".to_owned(), 150),
                ("worker".to_owned(), 250),
                ("new".to_owned(), 10),
            ]
            .into(),
        );
        let used = used(&before, &after);
        let names: Vec<(&str, f64)> = used
            .iter()
            .map(|t| (t.thread.as_str(), t.seconds))
            .collect();
        assert_eq!(names, [("worker", 2.0), ("store", 0.5), ("new", 0.1)]);
    }
}
