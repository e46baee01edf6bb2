//! The browser scenarios: `bench/js/browser.mjs` runs them in headless Chromium, once
//! per fresh browser launch; this takes the medians and the ratios.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::stats::median;

/// The libraries in the order they are reported, with what each row is.
pub(crate) const LIBRARIES: &[(&str, &str)] = &[
    (
        "native-echo",
        "native `WebSocket` + `JSON.parse`, `ws` echo server (baseline)",
    ),
    (
        "native-relaywire-server",
        "native `WebSocket` + `JSON.parse`, Relaywire chat server",
    ),
    ("socket.io", "socket.io-client, Socket.IO server"),
    ("relaywire", "Relaywire client, Relaywire chat server"),
];

/// The baseline every ratio is taken against.
pub(crate) const BASELINE: &str = "native-echo";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Throughput {
    per_second: f64,
    bad: u64,
}

#[derive(Debug, Deserialize)]
struct Latency {
    p50: f64,
    p99: f64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reconnect {
    open_ms: f64,
    acked_ms: f64,
}

/// Five tabs of one user, in one way of holding their connection.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Tabs {
    connections: u32,
    heap_bytes: f64,
}

#[derive(Debug, Deserialize)]
struct Run {
    throughput: BTreeMap<String, Throughput>,
    latency: BTreeMap<String, Latency>,
    reconnect: BTreeMap<String, Vec<Reconnect>>,
    tabs: BTreeMap<String, Tabs>,
}

/// One of the client's functions with the most self time in the profiled run.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct HotFunction {
    pub(crate) name: String,
    pub(crate) ms: f64,
}

/// Self time of one category in a CPU profile.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ProfileShare {
    pub(crate) category: String,
    pub(crate) ms: f64,
}

#[derive(Debug, Deserialize)]
struct Output {
    runs: Vec<Run>,
    #[serde(default)]
    profiles: BTreeMap<String, Vec<ProfileShare>>,
    #[serde(default, rename = "hottestFunctions")]
    hottest_functions: Vec<HotFunction>,
    versions: serde_json::Value,
    settings: serde_json::Value,
}

/// One library's throughput.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ThroughputRow {
    pub(crate) library: &'static str,
    pub(crate) what: &'static str,
    /// Median messages per second.
    pub(crate) per_second: f64,
    /// Every run's figure.
    pub(crate) runs: Vec<f64>,
    /// Against the baseline's median.
    pub(crate) ratio: f64,
}

/// One library's round trips.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LatencyRow {
    pub(crate) library: &'static str,
    pub(crate) what: &'static str,
    /// Median of the runs' p50, milliseconds.
    pub(crate) p50_ms: f64,
    /// Median of the runs' p99, milliseconds.
    pub(crate) p99_ms: f64,
    /// Every run's (p50, p99).
    pub(crate) runs: Vec<(f64, f64)>,
    /// p50 against the baseline's.
    pub(crate) p50_ratio: f64,
    /// p99 against the baseline's.
    pub(crate) p99_ratio: f64,
}

/// One library's reconnects.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReconnectRow {
    pub(crate) library: &'static str,
    /// Median, over every cycle of every run, from the server listening again to `open`.
    pub(crate) open_ms: f64,
    /// Median from the server listening again to every queued message acknowledged.
    pub(crate) acked_ms: f64,
    /// Every cycle's acked figure.
    pub(crate) samples: Vec<f64>,
}

/// Five tabs of one user: sharing one connection (`relaywire/shared`) or one each.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TabsRow {
    /// `shared` or `own`.
    pub(crate) mode: &'static str,
    /// Median of the sockets the server held for the tabs.
    pub(crate) connections: f64,
    /// Median of the tabs' JS heaps after a collection, summed, bytes.
    pub(crate) heap_bytes: f64,
}

/// Everything measured in the browser.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BrowserReport {
    pub(crate) runs: usize,
    pub(crate) versions: serde_json::Value,
    pub(crate) settings: serde_json::Value,
    pub(crate) throughput: Vec<ThroughputRow>,
    pub(crate) latency: Vec<LatencyRow>,
    pub(crate) reconnect: Vec<ReconnectRow>,
    /// The tabs measurement, shared first.
    pub(crate) tabs: Vec<TabsRow>,
    /// Self time by category in one profiled throughput run per library.
    pub(crate) profile: Option<BTreeMap<String, Vec<ProfileShare>>>,
    /// The client's functions with the most self time in its profiled run.
    pub(crate) hottest: Vec<HotFunction>,
}

/// The profiles as a table: a row per category, a column per library, each cell the
/// milliseconds and the share of that library's profiled time.
pub(crate) fn profile_table(profiles: &BTreeMap<String, Vec<ProfileShare>>) -> String {
    let libraries: Vec<(&str, &Vec<ProfileShare>)> = LIBRARIES
        .iter()
        .filter_map(|(library, _)| profiles.get(*library).map(|p| (*library, p)))
        .collect();
    let mut categories: Vec<(&str, f64)> = Vec::new();
    for (_, shares) in &libraries {
        for share in shares.iter() {
            match categories.iter_mut().find(|(c, _)| *c == share.category) {
                Some((_, ms)) => *ms += share.ms,
                None => categories.push((&share.category, share.ms)),
            }
        }
    }
    categories.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out = String::from("| where | ");
    out.push_str(
        &libraries
            .iter()
            .map(|(l, _)| *l)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" |\n|---|");
    out.push_str(&"---:|".repeat(libraries.len()));
    out.push('\n');
    for (category, _) in categories.iter().take(12) {
        out.push_str(&format!("| {category} |"));
        for (_, shares) in &libraries {
            let total: f64 = shares.iter().map(|s| s.ms).sum();
            let ms = shares
                .iter()
                .find(|s| s.category == *category)
                .map_or(0.0, |s| s.ms);
            out.push_str(&format!(
                " {ms:.0} ms ({:.0}%) |",
                ms * 100.0 / total.max(1e-9)
            ));
        }
        out.push('\n');
    }
    out.push_str("| **total profiled** |");
    for (_, shares) in &libraries {
        let total: f64 = shares.iter().map(|s| s.ms).sum();
        out.push_str(&format!(" {total:.0} ms |"));
    }
    out.push('\n');
    out
}

fn med(values: impl IntoIterator<Item = f64>) -> f64 {
    median(&values.into_iter().collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

/// Runs the browser scenarios and summarises them.
pub(crate) fn run(
    js_dir: &Path,
    server_binary: &Path,
    package: &Path,
    out_dir: &Path,
) -> Result<BrowserReport> {
    let out = out_dir.join("browser-raw.json");
    let _ = std::fs::remove_file(&out);
    let status = Command::new("node")
        .arg("browser.mjs")
        .current_dir(js_dir)
        .env("RELAYWIRE_SERVER_BIN", server_binary)
        .env("RELAYWIRE_PACKAGE", package)
        .env("BENCH_OUT", &out)
        .status()
        .map_err(|err| format!("cannot run node: {err}"))?;
    if !status.success() {
        return Err(format!("the browser benchmark failed ({status})"));
    }
    let text = std::fs::read_to_string(&out).map_err(|err| format!("{}: {err}", out.display()))?;
    summarise(&text)
}

fn summarise(text: &str) -> Result<BrowserReport> {
    let output: Output = serde_json::from_str(text)
        .map_err(|err| format!("the browser benchmark's output: {err}"))?;
    if output.runs.is_empty() {
        return Err("the browser benchmark ran nothing".to_owned());
    }
    for run in &output.runs {
        if let Some((library, t)) = run.throughput.iter().find(|(_, t)| t.bad > 0) {
            return Err(format!("{library} received {} malformed echoes", t.bad));
        }
    }
    let throughput_of = |library: &str| -> Result<Vec<f64>> {
        output
            .runs
            .iter()
            .map(|run| run.throughput.get(library).map(|t| t.per_second))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("no throughput for {library}"))
    };
    let latency_of = |library: &str| -> Result<Vec<(f64, f64)>> {
        output
            .runs
            .iter()
            .map(|run| run.latency.get(library).map(|l| (l.p50, l.p99)))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("no latency for {library}"))
    };
    let baseline_throughput = med(throughput_of(BASELINE)?);
    let baseline_latency = latency_of(BASELINE)?;
    let (base_p50, base_p99) = (
        med(baseline_latency.iter().map(|l| l.0)),
        med(baseline_latency.iter().map(|l| l.1)),
    );
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for &(library, what) in LIBRARIES {
        let runs = throughput_of(library)?;
        let per_second = med(runs.iter().copied());
        throughput.push(ThroughputRow {
            library,
            what,
            per_second,
            runs,
            ratio: per_second / baseline_throughput,
        });
        let runs = latency_of(library)?;
        let (p50_ms, p99_ms) = (med(runs.iter().map(|l| l.0)), med(runs.iter().map(|l| l.1)));
        latency.push(LatencyRow {
            library,
            what,
            p50_ms,
            p99_ms,
            runs,
            p50_ratio: p50_ms / base_p50,
            p99_ratio: p99_ms / base_p99,
        });
    }
    let mut reconnect = Vec::new();
    for library in ["relaywire", "socket.io"] {
        let cycles: Vec<&Reconnect> = output
            .runs
            .iter()
            .flat_map(|run| run.reconnect.get(library).into_iter().flatten())
            .collect();
        if cycles.is_empty() {
            return Err(format!("no reconnects for {library}"));
        }
        reconnect.push(ReconnectRow {
            library,
            open_ms: med(cycles.iter().map(|c| c.open_ms)),
            acked_ms: med(cycles.iter().map(|c| c.acked_ms)),
            samples: cycles.iter().map(|c| c.acked_ms).collect(),
        });
    }
    let mut tabs = Vec::new();
    for mode in ["shared", "own"] {
        let figures: Vec<&Tabs> = output
            .runs
            .iter()
            .filter_map(|run| run.tabs.get(mode))
            .collect();
        if figures.len() != output.runs.len() {
            return Err(format!("no tabs figures ({mode}) in some run"));
        }
        tabs.push(TabsRow {
            mode,
            connections: med(figures.iter().map(|t| f64::from(t.connections))),
            heap_bytes: med(figures.iter().map(|t| t.heap_bytes)),
        });
    }
    Ok(BrowserReport {
        runs: output.runs.len(),
        versions: output.versions,
        settings: output.settings,
        throughput,
        latency,
        reconnect,
        tabs,
        profile: (!output.profiles.is_empty()).then_some(output.profiles),
        hottest: output.hottest_functions,
    })
}

#[cfg(test)]
mod tests {
    use super::summarise;

    #[test]
    fn medians_and_ratios_come_from_every_run() {
        let run = |native: f64, relaywire: f64| {
            serde_json::json!({
                "throughput": {
                    "native-echo": { "perSecond": native, "bad": 0 },
                    "native-relaywire-server": { "perSecond": native / 2.0, "bad": 0 },
                    "socket.io": { "perSecond": native * 0.9, "bad": 0 },
                    "relaywire": { "perSecond": relaywire, "bad": 0 }
                },
                "latency": {
                    "native-echo": { "p50": 0.4, "p99": 1.0 },
                    "native-relaywire-server": { "p50": 0.5, "p99": 1.0 },
                    "socket.io": { "p50": 0.5, "p99": 1.2 },
                    "relaywire": { "p50": 0.6, "p99": 2.0 }
                },
                "reconnect": {
                    "relaywire": [{ "openMs": 100.0, "ackedMs": 110.0 }],
                    "socket.io": [{ "openMs": 200.0, "ackedMs": 205.0 }]
                },
                "tabs": {
                    "shared": { "connections": 1, "heapBytes": relaywire },
                    "own": { "connections": 5, "heapBytes": native }
                }
            })
        };
        let output = serde_json::json!({
            "runs": [run(10_000.0, 5_000.0), run(12_000.0, 9_000.0), run(11_000.0, 6_000.0)],
            "versions": {}, "settings": {}
        });
        let report = summarise(&output.to_string()).expect("a valid output");
        let relaywire = report
            .throughput
            .iter()
            .find(|r| r.library == "relaywire")
            .expect("a row");
        assert_eq!(relaywire.per_second, 6_000.0);
        assert!((relaywire.ratio - 6_000.0 / 11_000.0).abs() < 1e-9);
        let latency = report
            .latency
            .iter()
            .find(|r| r.library == "relaywire")
            .expect("a row");
        assert!((latency.p50_ratio - 1.5).abs() < 1e-9);
        assert_eq!(report.reconnect[0].acked_ms, 110.0);
        assert_eq!(report.tabs[0].mode, "shared");
        assert_eq!(report.tabs[0].connections, 1.0);
        assert_eq!(report.tabs[0].heap_bytes, 6_000.0);
        assert_eq!(report.tabs[1].heap_bytes, 11_000.0);
    }

    #[test]
    fn malformed_echoes_fail_the_benchmark() {
        let output = serde_json::json!({
            "runs": [{ "throughput": { "relaywire": { "perSecond": 1.0, "bad": 3 } }, "latency": {}, "reconnect": {}, "tabs": {} }],
            "versions": {}, "settings": {}
        });
        let error = summarise(&output.to_string()).expect_err("bad echoes");
        assert!(error.contains("malformed"), "{error}");
    }
}
