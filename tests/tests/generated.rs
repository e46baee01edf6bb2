//! The task board's TypeScript stays in step with its catalogue: when
//! `tests/bindings/tasks.ts` differs, the test rewrites it and fails.

use std::path::Path;

use relaywire_protocol::typescript::assert_fresh;

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
