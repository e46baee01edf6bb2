//! Generated files stay in step with their sources: the task board's TypeScript with
//! its catalogue, the chat server README's bad-input table with the probe suite, the
//! client README's browser example with the file the browser tests run. When one
//! differs, the test rewrites it and fails.

use std::path::Path;

use relaywire_protocol::typescript::{assert_fresh, assert_section_fresh};

#[test]
fn task_board_bindings_are_fresh() {
    let text = relaywire_tests::tasks::typescript();
    assert!(
        text.contains(r#""task:add": { delivery: "durable" }"#),
        "{text}"
    );
    assert!(text.contains(
        r#""board:viewing": { delivery: "ephemeral", key: "boardId", active: "viewing" }"#
    ));
    assert!(text.contains(r#""task:added": { numbered: true }"#));
    assert_fresh(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/tasks.ts"),
        &text,
    );
}

#[test]
fn the_readme_bad_input_table_is_the_probe_table() {
    let table = relaywire_tests::probe::markdown_table();
    assert_eq!(
        table.lines().count(),
        relaywire_tests::probe::PROBES.len() + 2,
        "one row per probe"
    );
    assert_section_fresh(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chat-server/README.md"),
        "probes",
        &table,
    );
}

#[test]
fn the_client_readme_browser_example_is_the_tested_one() {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("../client-wasm");
    let example = std::fs::read_to_string(client.join("tests/support/web_quick_start.rs"))
        .expect("the browser example");
    assert_section_fresh(
        &client.join("README.md"),
        "web-quick-start",
        &format!("```rust\n{example}```\n"),
    );
}
