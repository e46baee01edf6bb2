//! The report: `report.json` with every figure, `report.md` for people, and the
//! summary table in the README.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::Result;
use crate::browser::{BASELINE, BrowserReport};
use crate::load::{Fanout, LoadReport};
use crate::size::{SizeReport, Sizes};

/// Where the README's table goes.
const README_START: &str = "<!-- bench:start (written by `cargo xtask bench`) -->";
const README_END: &str = "<!-- bench:end -->";

/// The machine and tools of the run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) date: String,
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) memory_gib: f64,
    pub(crate) rustc: String,
    pub(crate) node: String,
}

/// Everything one `cargo xtask bench` measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) machine: Machine,
    pub(crate) size: Option<SizeReport>,
    pub(crate) browser: Option<BrowserReport>,
    pub(crate) server: Option<LoadReport>,
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

impl Machine {
    /// Reads `/proc` and asks the tools their versions.
    pub(crate) fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split(':').nth(1))
            .map_or_else(|| "unknown CPU".to_owned(), |name| name.trim().to_owned());
        let memory_kb: f64 = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: memory_kb / 1024.0 / 1024.0,
            rustc: command_line("rustc", &["--version"]),
            node: command_line("node", &["--version"]),
        }
    }
}

/// `12345` as `12,345`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1000.0)
}

fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("×{value:.2}")
    } else {
        "–".to_owned()
    }
}

fn rate(value: f64) -> String {
    thousands(value.round().max(0.0) as u64)
}

struct Table(String);

impl Table {
    /// A table whose columns from `numbers_from` on hold figures (right-aligned), but
    /// for the last `text_after`, which hold text again.
    fn new(header: &[&str], numbers_from: usize, text_after: usize) -> Table {
        let mut out = format!("| {} |\n|", header.join(" | "));
        for (i, _) in header.iter().enumerate() {
            let figure = i >= numbers_from && i + text_after < header.len();
            out.push_str(if figure { "---:|" } else { "---|" });
        }
        out.push('\n');
        Table(out)
    }

    fn row(&mut self, cells: &[String]) {
        let _ = writeln!(self.0, "| {} |", cells.join(" | "));
    }

    fn done(self) -> String {
        self.0
    }
}

fn sizes_cells(sizes: &Sizes) -> [String; 3] {
    [
        thousands(sizes.raw),
        thousands(sizes.gzip),
        thousands(sizes.brotli),
    ]
}

fn size_section(size: &SizeReport, out: &mut String) {
    let relaywire = &size.bundles[0];
    out.push_str("## Size: what an app ships\n\n");
    out.push_str(
        "Each library bundled as an app imports it, with esbuild `--bundle --minify \
         --format=esm` for the browser; gzip is GNU `gzip -9 -n`, brotli quality 11. \
         Relaywire's bundle is the package's JS glue with the WebAssembly embedded.\n\n",
    );
    let mut table = Table::new(
        &[
            "library",
            "import",
            "raw bytes",
            "gzip -9",
            "brotli",
            "gzip against Relaywire",
        ],
        2,
        0,
    );
    for bundle in &size.bundles {
        let [raw, gzip, brotli] = sizes_cells(&bundle.sizes);
        table.row(&[
            format!("{} {}", bundle.name, bundle.version),
            format!("`{}`", bundle.entry.trim_end_matches(';')),
            raw,
            gzip,
            brotli,
            ratio(bundle.sizes.gzip as f64 / relaywire.sizes.gzip as f64),
        ]);
    }
    out.push_str(&table.done());
    let _ = writeln!(
        out,
        "\nThe budget `cargo xtask test` enforces: {} bytes gzip (`xtask/src/bench.rs`); \
         this build is {} ({:.0}% of it). With `--charset=utf8` (as Vite keeps text) the \
         bundle is {} bytes gzip: the package is plain ASCII, so it does not depend on the \
         bundler's charset.\n",
        thousands(size.budget_gzip),
        thousands(relaywire.sizes.gzip),
        relaywire.sizes.gzip as f64 * 100.0 / size.budget_gzip as f64,
        thousands(size.utf8.gzip)
    );

    out.push_str("### What each size step bought\n\n");
    out.push_str(
        "The browser client built once per step, each step adding to the one before; \
         sizes are wasm-bindgen's output (`_bg.wasm`) and its JS glue.\n\n",
    );
    let mut table = Table::new(
        &[
            "step",
            "what it changes",
            "wasm raw",
            "wasm gzip",
            "gzip saved by the step",
            "JS glue gzip",
        ],
        2,
        0,
    );
    let mut previous: Option<u64> = None;
    for step in &size.steps {
        table.row(&[
            format!("`{}`", step.name),
            step.what.clone(),
            thousands(step.wasm.raw),
            thousands(step.wasm.gzip),
            previous.map_or_else(
                || "–".to_owned(),
                |p| {
                    let saved = p as i64 - step.wasm.gzip as i64;
                    format!("{saved} ({:.1}%)", saved as f64 * 100.0 / p as f64)
                },
            ),
            thousands(step.glue.gzip),
        ]);
        previous = Some(step.wasm.gzip);
    }
    out.push_str(&table.done());

    out.push_str("\n### Embedding the WebAssembly\n\n");
    out.push_str(
        "The package embeds the wasm in its JS so no bundler needs configuring. Base64 \
         hides the wasm's repeats from gzip; the package's ASCII encoding keeps every byte \
         value's encoding fixed, so they survive.\n\n",
    );
    let mut table = Table::new(&["form", "raw", "gzip -9", "brotli"], 1, 0);
    for (form, sizes) in [
        ("the bare `.wasm`", &size.embedding.bare),
        ("a JS module holding it as base64", &size.embedding.base64),
        (
            "the package's module (ASCII, byte for byte)",
            &size.embedding.ascii,
        ),
    ] {
        let [raw, gzip, brotli] = sizes_cells(sizes);
        table.row(&[form.to_owned(), raw, gzip, brotli]);
    }
    out.push_str(&table.done());

    out.push_str("\n### What the wasm is made of\n\n");
    let profile = &size.profile;
    let _ = writeln!(
        out,
        "Function bodies of the shipped wasm by origin, read from a build that kept its \
         names: {} bytes of code, {} of data (string constants), {} of other sections.\n",
        thousands(profile.code_bytes),
        thousands(profile.data_bytes),
        thousands(profile.other_bytes)
    );
    let mut table = Table::new(
        &["origin", "bytes", "share", "functions", "largest function"],
        1,
        1,
    );
    for share in &profile.code {
        table.row(&[
            share.origin.to_owned(),
            thousands(share.bytes),
            format!(
                "{:.0}%",
                share.bytes as f64 * 100.0 / profile.code_bytes.max(1) as f64
            ),
            share.functions.to_string(),
            format!(
                "`{}` ({} B)",
                share.largest.replace('`', "'"),
                share.largest_bytes
            ),
        ]);
    }
    out.push_str(&table.done());
    out.push('\n');
}

fn browser_section(browser: &BrowserReport, out: &mut String) {
    let _ = writeln!(
        out,
        "## Speed in headless Chromium\n\n{} fresh browser launches (Chromium {}), each \
         running every scenario once, on 127.0.0.1; every figure is the median over the \
         runs, with each run's figure after it. Ratios are against the native `WebSocket` \
         with `JSON.parse` against a `ws` echo server: the limit of this machine.\n",
        browser.runs,
        browser.versions["chromium"].as_str().unwrap_or("?")
    );
    let settings = &browser.settings;
    let _ = writeln!(
        out,
        "### Throughput\n\n{} `chat:message` messages sent in one loop (after {} to warm \
         up), until every echo is received, parsed and handed to a handler (Relaywire: \
         and every message acknowledged).\n",
        settings["messages"], settings["warmup"]
    );
    let mut table = Table::new(
        &[
            "client and server",
            "messages/s",
            "runs",
            "against the baseline",
        ],
        1,
        0,
    );
    for row in &browser.throughput {
        table.row(&[
            row.what.to_owned(),
            rate(row.per_second),
            row.runs
                .iter()
                .map(|r| rate(*r))
                .collect::<Vec<_>>()
                .join(" / "),
            ratio(row.ratio),
        ]);
    }
    out.push_str(&table.done());
    let _ = writeln!(
        out,
        "\n### Latency\n\n{} sequential `ping` → `pong` round trips after {} to warm up; \
         percentiles by nearest rank.\n",
        settings["pings"], settings["pingWarmup"]
    );
    let mut table = Table::new(
        &[
            "client and server",
            "p50 ms",
            "p99 ms",
            "runs (p50 / p99)",
            "p50 against the baseline",
            "p99 against the baseline",
        ],
        1,
        0,
    );
    for row in &browser.latency {
        table.row(&[
            row.what.to_owned(),
            format!("{:.3}", row.p50_ms),
            format!("{:.3}", row.p99_ms),
            row.runs
                .iter()
                .map(|(a, b)| format!("{a:.3} / {b:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
            ratio(row.p50_ratio),
            ratio(row.p99_ratio),
        ]);
    }
    out.push_str(&table.done());
    let backoff = &settings["backoff"];
    let _ = writeln!(
        out,
        "\n### Reconnect\n\nThe server is killed (SIGKILL), {} messages are sent while it \
         is down for {} ms, and it is started again; timed from its port accepting again. \
         Both clients retry with the same backoff: {} ms doubling to {} ms, jitter {}. \
         {} cycles per run.\n",
        settings["queued"],
        settings["downMs"],
        backoff["initialDelayMs"],
        backoff["maxDelayMs"],
        backoff["jitter"],
        settings["reconnects"]
    );
    let mut table = Table::new(
        &[
            "client",
            "open again, ms",
            "every queued message acknowledged, ms",
            "each cycle (acked)",
        ],
        1,
        0,
    );
    for row in &browser.reconnect {
        table.row(&[
            row.library.to_owned(),
            format!("{:.0}", row.open_ms),
            format!("{:.0}", row.acked_ms),
            row.samples
                .iter()
                .map(|s| format!("{s:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    out.push_str(&table.done());
    out.push_str(
        "\n### Five tabs\n\nFive tabs of one browser context signed in as one user, once \
         sharing one connection (`relaywire/shared`: one tab holds the socket, the others \
         talk to it over a `BroadcastChannel`) and once with a client each; measured when \
         every tab is open: the sockets the server holds for the user, and the tabs' JS \
         heaps after a garbage collection, summed (Chrome DevTools protocol).\n\n",
    );
    let mut table = Table::new(
        &["tabs", "server sockets", "JS heap of the five tabs"],
        1,
        0,
    );
    for row in &browser.tabs {
        table.row(&[
            match row.mode {
                "shared" => "sharing one connection".to_owned(),
                _ => "a connection each".to_owned(),
            },
            format!("{:.0}", row.connections),
            format!("{:.1} MB", row.heap_bytes / 1e6),
        ]);
    }
    out.push_str(&table.done());
    out.push_str(
        "\nThe heaps hardly differ: every tab still loads the package and its WebAssembly, \
         and a socket costs a tab little. Sharing saves what each connection costs beyond \
         the tab: the server's sockets (and the memory each holds, measured under \
         Idle connections), one heartbeat instead of five, and one copy of every message \
         on the wire instead of five.\n",
    );
    if let Some(profile) = browser.profile.as_ref() {
        out.push_str(
            "\n### Where the browser's time goes\n\nA CPU profile (Chrome DevTools protocol) \
             of one extra throughput run per client, self time by where the code comes \
             from. The measured runs above are not profiled.\n\n",
        );
        out.push_str(&crate::browser::profile_table(profile));
        if !browser.hottest.is_empty() {
            out.push_str(
                "\nThe client's functions with the most self time in its profiled run \
                 (the wasm with its names kept):\n\n",
            );
            let mut table = Table::new(&["function", "self time, ms"], 1, 0);
            for function in &browser.hottest {
                table.row(&[
                    format!("`{}`", function.name.replace('`', "'")),
                    format!("{:.0}", function.ms),
                ]);
            }
            out.push_str(&table.done());
        }
    }
    out.push('\n');
}

/// The scale-out rows: the same fan-out on PostgreSQL, and over three nodes of each
/// server on one Redis, with what it costs and why.
fn scale_out_section(server: &LoadReport, out: &mut String) {
    if server.scale_out.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n### Scale-out\n\nThe same fan-out, the participants spread over the nodes in turn \
         (the sender on the first), on a private PostgreSQL 15 and Redis 7 started for the run. \
         One machine runs every node, the store, Redis and the generator: these rows say what \
         a delivery costs in each deployment, not how much capacity nodes add.\n"
    );
    let mut table = Table::new(
        &[
            "deployment",
            "nodes",
            "deliveries/s",
            "runs",
            "p50 ms",
            "p99 ms",
            "server CPU ms per 1,000 deliveries (PostgreSQL and Redis not counted)",
        ],
        1,
        0,
    );
    for load in &server.scale_out {
        table.row(&[
            load.deployment.to_owned(),
            load.nodes.to_string(),
            rate(load.per_second),
            load.fanout
                .iter()
                .map(|r| rate(r.per_second))
                .collect::<Vec<_>>()
                .join(" / "),
            format!("{:.2}", load.p50_ms),
            format!("{:.2}", load.p99_ms),
            format!("{:.1}", load.cpu_ms_per_1000),
        ]);
    }
    out.push_str(&table.done());
    let profile = &server.store_profile;
    if !profile.top.is_empty() {
        let _ = writeln!(
            out,
            "\nWhat PostgreSQL executed for the two Relaywire rows (`pg_stat_statements`): \
             {} statements for {} messages ({:.1} per message), {:.0} ms of execution in all \
             ({:.2} ms per message). The statements that took longest:\n",
            thousands(profile.calls),
            thousands(profile.messages),
            profile.calls as f64 / profile.messages.max(1) as f64,
            profile.total_ms,
            profile.total_ms / profile.messages.max(1) as f64,
        );
        let mut table = Table::new(&["statement", "calls", "ms in all", "ms per call"], 1, 0);
        for statement in &profile.top {
            table.row(&[
                format!("`{}`", statement.statement.replace('|', "\\|")),
                thousands(statement.calls),
                format!("{:.0}", statement.total_ms),
                format!("{:.3}", statement.total_ms / statement.calls.max(1) as f64),
            ]);
        }
        out.push_str(&table.done());
    }
    let _ = writeln!(
        out,
        "\nWhere the PostgreSQL and cluster rows cost more, and why (from the statement \
         profile above): a chat message is two PostgreSQL transactions, the dedup check and \
         then the publish (the room's lock, membership, the event, every member's number \
         and inbox row in one statement, the dedup record), each statement a round trip, \
         where SQLite commits a whole batch of messages in one transaction in-process; \
         numbering and filing the recipients is most of PostgreSQL's execution time (every \
         member's head is a row updated, so a new row version, per message); a \
         connection's messages are stored one after another on PostgreSQL, so the sender's \
         window does not overlap their writes; and each event crosses Redis once and is \
         decoded by every node before it fans out there. Socket.IO's adapter stores \
         nothing and acknowledges before anyone receives: it has no store to pay for, and \
         nothing to catch up from when Redis drops a message."
    );
}

fn server_section(server: &LoadReport, out: &mut String) {
    let settings = &server.settings;
    let _ = writeln!(
        out,
        "## Server load\n\nA load generator (Rust, tokio) on the same machine, against the \
         reference server (release build, SQLite) and a Socket.IO 4 server on Node doing \
         the same work (`bench/js/servers/socketio.mjs`; it stores nothing). Both check \
         an HS256 token on every connection. The rate limit of the reference server is \
         raised for the flooding sender; everything else keeps its defaults.\n"
    );
    let _ = writeln!(
        out,
        "### Idle connections\n\n{} authenticated connections opened, 64 at a time, and \
         held; memory is the server's resident set, before and after.\n",
        settings.idle
    );
    let mut table = Table::new(
        &[
            "server",
            "held",
            "KiB per connection",
            "resident before → after",
            "opened per second",
        ],
        1,
        0,
    );
    for load in &server.servers {
        table.row(&[
            load.server.to_owned(),
            format!("{} of {}", load.idle.held, load.idle.opened),
            format!("{:.1}", load.idle.bytes_per_connection / 1024.0),
            format!(
                "{:.1} → {:.1} MiB",
                load.idle.rss_before as f64 / 1048576.0,
                load.idle.rss_after as f64 / 1048576.0
            ),
            rate(load.idle.opened_per_second),
        ]);
    }
    out.push_str(&table.done());
    let _ = writeln!(
        out,
        "\n### Fan-out\n\nOne sender posts {} messages to a chat of {} other participants, \
         keeping {} unacknowledged at most; deliveries per second count every participant's \
         copy; latency is from the sender's write to a participant's read. Median of {} \
         runs, the servers taking turns.\n",
        settings.messages, settings.receivers, settings.window, settings.runs
    );
    let mut table = Table::new(
        &[
            "server",
            "deliveries/s",
            "runs",
            "p50 ms",
            "p99 ms",
            "deliveries per frame (last run)",
            "server CPU by thread (last run)",
        ],
        1,
        1,
    );
    for load in &server.servers {
        let last = load.fanout.last();
        table.row(&[
            load.server.to_owned(),
            rate(load.per_second),
            load.fanout
                .iter()
                .map(|r| rate(r.per_second))
                .collect::<Vec<_>>()
                .join(" / "),
            format!("{:.2}", load.p50_ms),
            format!("{:.2}", load.p99_ms),
            last.map(|run| format!("{:.1}", run.delivered as f64 / run.frames.max(1) as f64))
                .unwrap_or_default(),
            last.map(|run| {
                run.server_cpu
                    .iter()
                    .take(4)
                    .map(|t| format!("{} {:.2} s", t.thread, t.seconds))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        ]);
    }
    out.push_str(&table.done());
    if let Some(micros) = server
        .servers
        .first()
        .and_then(|load| load.fanout.last())
        .and_then(store_micros_per_delivery)
    {
        let _ = writeln!(
            out,
            "\nThe reference server's store thread spent {micros:.1} µs of CPU per delivery in \
             its last run: each recipient's copy is numbered in that recipient's own stream \
             and committed before anyone receives it. A member's stream holds the room's \
             fan-outs as one live run, counted by the room, so a fan-out writes the event \
             and the room's count and nothing per member, and numbers the members from \
             the store thread's copy of their runs while none of them changed."
        );
    }
    scale_out_section(server, out);
    let generator: Vec<String> = server
        .servers
        .iter()
        .filter_map(|load| {
            let run = load.fanout.last()?;
            Some(format!(
                "{:.2} CPU seconds in {}'s last run ({:.2} s long)",
                run.generator_cpu_seconds, load.server, run.seconds
            ))
        })
        .collect();
    if !generator.is_empty() {
        let _ = writeln!(
            out,
            "\nThe generator itself, on the same {} cores, used {}. It reads each frame into \
             an 8 KiB buffer: tungstenite zero-fills its whole read buffer before every read, \
             and at its default 128 KiB that fill was a third of the generator's CPU, taken \
             from the server under test.",
            std::thread::available_parallelism().map_or(1, usize::from),
            generator.join("; ")
        );
    }
    out.push('\n');
}

/// The findings that are losses, worded from the figures.
fn losses(report: &Report) -> Vec<String> {
    let mut losses = Vec::new();
    if let Some(size) = &report.size {
        let relaywire = &size.bundles[0];
        for peer in &size.bundles[1..] {
            if relaywire.sizes.gzip > peer.sizes.gzip {
                let client: u64 = size
                    .profile
                    .code
                    .iter()
                    .filter(|s| {
                        s.origin.starts_with("client core")
                            || s.origin.starts_with("browser driver")
                    })
                    .map(|s| s.bytes)
                    .sum();
                losses.push(format!(
                    "**Size against {}**: {} bytes gzip against {} ({}). The profile above says \
                     why: {:.0}% of the wasm's code is the client itself (connection state \
                     machine, outbox, request table, store, the exported API), which \
                     {} does {}; the rest is wasm-bindgen's glue, collections and the \
                     allocator.",
                    peer.name,
                    thousands(relaywire.sizes.gzip),
                    thousands(peer.sizes.gzip),
                    ratio(relaywire.sizes.gzip as f64 / peer.sizes.gzip as f64),
                    client as f64 * 100.0 / size.profile.code_bytes.max(1) as f64,
                    peer.name,
                    if peer.name == "reconnecting-websocket" {
                        "without (it only reconnects: no acknowledgements, no resume, no typed messages)"
                    } else {
                        "in JS with fewer guarantees (no resend of unacknowledged messages, no resume)"
                    }
                ));
            }
        }
    }
    if let Some(browser) = &report.browser {
        let find = |library: &str| browser.throughput.iter().find(|r| r.library == library);
        if let (Some(relaywire), Some(socketio), Some(native)) = (
            find("relaywire"),
            find("socket.io"),
            find("native-relaywire-server"),
        ) && relaywire.per_second < socketio.per_second
        {
            let profiled = |category: &str| {
                browser
                    .profile
                    .as_ref()
                    .and_then(|p| p.get("relaywire"))
                    .map(|shares| {
                        let total: f64 = shares.iter().map(|s| s.ms).sum();
                        let ms: f64 = shares
                            .iter()
                            .filter(|s| s.category.starts_with(category))
                            .map(|s| s.ms)
                            .sum();
                        (ms, total)
                    })
            };
            let client_share = match (profiled("Relaywire wasm"), profiled("Relaywire JS glue")) {
                (Some((wasm, total)), Some((glue, _))) => format!(
                    " In the profiled run, the client's wasm took {wasm:.0} ms and its JS glue \
                     {glue:.0} ms (which includes `JSON.parse` of every frame) of {total:.0} ms."
                ),
                _ => String::new(),
            };
            losses.push(format!(
                "**Browser throughput against socket.io-client**: {} against {} messages/s \
                 ({}). Two causes, both measured above. The protocol: against the same \
                 Relaywire server a hand-written native `WebSocket` client reaches {} \
                 messages/s ({} of the echo baseline), because the server stores every \
                 message before it answers and, on protocol 2 as that client speaks it, sends \
                 an `ack` frame besides the echo, one frame each. The client: Relaywire reaches \
                 {} of that hand-written client, for its acknowledgement tracking, its \
                 outbox and the snapshot it publishes on every change (the benchmark \
                 subscribes to it, as a React app does).{client_share}",
                rate(relaywire.per_second),
                rate(socketio.per_second),
                ratio(relaywire.per_second / socketio.per_second),
                rate(native.per_second),
                ratio(native.ratio),
                ratio(relaywire.per_second / native.per_second),
            ));
        }
        let latency = |library: &str| browser.latency.iter().find(|r| r.library == library);
        if let (Some(relaywire), Some(socketio)) = (latency("relaywire"), latency("socket.io"))
            && relaywire.p50_ms > socketio.p50_ms * 1.1
        {
            losses.push(format!(
                "**Round-trip latency against socket.io-client**: p50 {:.3} ms against {:.3} ms.",
                relaywire.p50_ms, socketio.p50_ms
            ));
        }
    }
    if let Some(server) = &report.server
        && let [relaywire, socketio] = server.servers.as_slice()
    {
        if relaywire.per_second < socketio.per_second {
            losses.push(format!(
                "**Fan-out against Socket.IO**: {} against {} deliveries/s ({}). Per thread \
                 CPU in the table above shows where the reference server spends it: {}{}. It \
                 stores every message (SQLite, WAL) and numbers it in each recipient's own \
                 stream before delivering (numbers read from the members' live runs of the \
                 room's fan-outs), where the Socket.IO \
                 server keeps nothing.",
                rate(relaywire.per_second),
                rate(socketio.per_second),
                ratio(relaywire.per_second / socketio.per_second),
                relaywire
                    .fanout
                    .last()
                    .map(|run| {
                        run.server_cpu
                            .iter()
                            .take(3)
                            .map(|t| format!("{} {:.2} s", t.thread, t.seconds))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                relaywire
                    .fanout
                    .last()
                    .and_then(store_micros_per_delivery)
                    .map(|micros| format!(" (the store thread {micros:.1} µs per delivery)"))
                    .unwrap_or_default()
            ));
        }
        if relaywire.idle.bytes_per_connection > socketio.idle.bytes_per_connection {
            losses.push(format!(
                "**Memory per idle connection against Socket.IO**: {:.1} KiB against {:.1} KiB.",
                relaywire.idle.bytes_per_connection / 1024.0,
                socketio.idle.bytes_per_connection / 1024.0
            ));
        }
    }
    losses
}

/// The report for people.
pub(crate) fn markdown(report: &Report) -> String {
    let machine = &report.machine;
    let mut out = format!(
        "# Relaywire benchmark report\n\nMeasured {} on {} ({} cores, {:.0} GiB), {}, Node {}. \
         Every comparison below was measured in this run on this machine; ratios compare \
         figures of the same run. `report.json` beside this file holds every figure.\n\n",
        machine.date, machine.cpu, machine.cores, machine.memory_gib, machine.rustc, machine.node
    );
    if let Some(size) = &report.size {
        size_section(size, &mut out);
    }
    if let Some(browser) = &report.browser {
        browser_section(browser, &mut out);
    }
    if let Some(server) = &report.server {
        server_section(server, &mut out);
    }
    out.push_str("## Where Relaywire loses\n\n");
    let losses = losses(report);
    if losses.is_empty() {
        out.push_str("Nowhere in this run.\n");
    }
    for loss in losses {
        let _ = writeln!(out, "- {loss}");
    }
    out
}

/// The README's summary table; only a complete run writes it.
pub(crate) fn summary(report: &Report) -> Option<String> {
    let (size, browser, server) = (
        report.size.as_ref()?,
        report.browser.as_ref()?,
        report.server.as_ref()?,
    );
    let relaywire = &size.bundles[0];
    let socketio_size = size.bundles.iter().find(|b| b.name == "socket.io-client")?;
    let throughput = |library: &str| browser.throughput.iter().find(|r| r.library == library);
    let latency = |library: &str| browser.latency.iter().find(|r| r.library == library);
    let reconnect = |library: &str| browser.reconnect.iter().find(|r| r.library == library);
    let (rw_tp, sio_tp, base_tp) = (
        throughput("relaywire")?,
        throughput("socket.io")?,
        throughput(BASELINE)?,
    );
    let (rw_lat, sio_lat, base_lat) = (
        latency("relaywire")?,
        latency("socket.io")?,
        latency(BASELINE)?,
    );
    let (rw_re, sio_re) = (reconnect("relaywire")?, reconnect("socket.io")?);
    let [rw_server, sio_server] = server.servers.as_slice() else {
        return None;
    };
    let mut table = Table::new(
        &[
            "",
            "Relaywire",
            &format!("socket.io {}", socketio_size.version),
            "native `WebSocket`",
            "Relaywire ÷ socket.io",
        ],
        1,
        0,
    );
    table.row(&[
        "browser payload, gzip -9".to_owned(),
        kb(relaywire.sizes.gzip),
        kb(socketio_size.sizes.gzip),
        "0".to_owned(),
        ratio(relaywire.sizes.gzip as f64 / socketio_size.sizes.gzip as f64),
    ]);
    table.row(&[
        "browser payload, brotli".to_owned(),
        kb(relaywire.sizes.brotli),
        kb(socketio_size.sizes.brotli),
        "0".to_owned(),
        ratio(relaywire.sizes.brotli as f64 / socketio_size.sizes.brotli as f64),
    ]);
    table.row(&[
        "throughput in Chromium, messages/s".to_owned(),
        format!(
            "{} ({} of native)",
            rate(rw_tp.per_second),
            ratio(rw_tp.ratio)
        ),
        format!(
            "{} ({} of native)",
            rate(sio_tp.per_second),
            ratio(sio_tp.ratio)
        ),
        rate(base_tp.per_second),
        ratio(rw_tp.per_second / sio_tp.per_second),
    ]);
    table.row(&[
        "round trip p50 / p99, ms".to_owned(),
        format!("{:.3} / {:.3}", rw_lat.p50_ms, rw_lat.p99_ms),
        format!("{:.3} / {:.3}", sio_lat.p50_ms, sio_lat.p99_ms),
        format!("{:.3} / {:.3}", base_lat.p50_ms, base_lat.p99_ms),
        format!(
            "{} / {}",
            ratio(rw_lat.p50_ms / sio_lat.p50_ms),
            ratio(rw_lat.p99_ms / sio_lat.p99_ms)
        ),
    ]);
    table.row(&[
        "server back → queued messages acked, ms".to_owned(),
        format!("{:.0}", rw_re.acked_ms),
        format!("{:.0}", sio_re.acked_ms),
        "–".to_owned(),
        ratio(rw_re.acked_ms / sio_re.acked_ms),
    ]);
    table.row(&[
        format!(
            "server memory per idle connection, {} opened",
            thousands(rw_server.idle.opened as u64)
        ),
        format!(
            "{:.1} KiB ({} held)",
            rw_server.idle.bytes_per_connection / 1024.0,
            thousands(rw_server.idle.held as u64)
        ),
        format!(
            "{:.1} KiB ({} held)",
            sio_server.idle.bytes_per_connection / 1024.0,
            thousands(sio_server.idle.held as u64)
        ),
        "–".to_owned(),
        ratio(rw_server.idle.bytes_per_connection / sio_server.idle.bytes_per_connection),
    ]);
    table.row(&[
        format!(
            "server fan-out to {} participants, deliveries/s",
            server.settings.receivers
        ),
        rate(rw_server.per_second),
        rate(sio_server.per_second),
        "–".to_owned(),
        ratio(rw_server.per_second / sio_server.per_second),
    ]);
    table.row(&[
        "fan-out delivery p50 / p99, ms".to_owned(),
        format!("{:.2} / {:.2}", rw_server.p50_ms, rw_server.p99_ms),
        format!("{:.2} / {:.2}", sio_server.p50_ms, sio_server.p99_ms),
        "–".to_owned(),
        format!(
            "{} / {}",
            ratio(rw_server.p50_ms / sio_server.p50_ms),
            ratio(rw_server.p99_ms / sio_server.p99_ms)
        ),
    ]);
    if let [single_pg, cluster, sio_cluster] = server.scale_out.as_slice() {
        table.row(&[
            "fan-out on PostgreSQL, 1 node, deliveries/s".to_owned(),
            format!(
                "{} ({} of SQLite)",
                rate(single_pg.per_second),
                ratio(single_pg.per_second / rw_server.per_second)
            ),
            "–".to_owned(),
            "–".to_owned(),
            "–".to_owned(),
        ]);
        table.row(&[
            format!(
                "fan-out on {} nodes (Redis between them), deliveries/s (p99 ms)",
                cluster.nodes
            ),
            format!("{} (p99 {:.2})", rate(cluster.per_second), cluster.p99_ms),
            format!(
                "{} (p99 {:.2})",
                rate(sio_cluster.per_second),
                sio_cluster.p99_ms
            ),
            "–".to_owned(),
            ratio(cluster.per_second / sio_cluster.per_second),
        ]);
    }
    let machine = &report.machine;
    Some(format!(
        "Measured {} on {} ({} cores) with Chromium {}, medians of {} runs; the socket.io \
         column is socket.io-client against a Socket.IO server on Node (server rows: the \
         Socket.IO server). The full report, with each size step, what the wasm is made \
         of, and where Relaywire loses and why, is `target/bench/report.md`.\n\n{}",
        machine.date,
        machine.cpu,
        machine.cores,
        browser.versions["chromium"].as_str().unwrap_or("?"),
        browser.runs,
        table.done()
    ))
}

/// Writes `report.json` and `report.md` into `out_dir`, and the summary into the README.
pub(crate) fn write(report: &Report, out_dir: &Path, readme: &Path) -> Result {
    let json = serde_json::to_string_pretty(report).map_err(|err| err.to_string())?;
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|err| format!("{}: {err}", path.display()))
    };
    write(&out_dir.join("report.json"), &json)?;
    write(&out_dir.join("report.md"), &markdown(report))?;
    if let Some(summary) = summary(report) {
        let text = std::fs::read_to_string(readme)
            .map_err(|err| format!("{}: {err}", readme.display()))?;
        let start = text
            .find(README_START)
            .ok_or("the README has no bench:start marker")?;
        let end = text
            .find(README_END)
            .ok_or("the README has no bench:end marker")?;
        let updated = format!(
            "{}{README_START}\n{summary}{}",
            &text[..start],
            &text[end..]
        );
        write(readme, &updated)?;
    }
    Ok(())
}

/// The store thread's CPU time per delivery in a fan-out run, in microseconds.
fn store_micros_per_delivery(run: &Fanout) -> Option<f64> {
    let store = run
        .server_cpu
        .iter()
        .find(|t| t.thread == "relaywire-store")?;
    (run.delivered > 0).then(|| store.seconds * 1e6 / run.delivered as f64)
}

#[cfg(test)]
mod tests {
    use super::{ratio, thousands};

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(13_025), "13,025");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(ratio(2.714), "×2.71");
        assert_eq!(ratio(f64::NAN), "–");
    }
}
