//! Generated files stay in step with the catalogue: `bindings/chat.ts` and the message
//! tables of the READMEs. When one differs, the test rewrites it and fails, so a
//! changed message cannot ship with stale TypeScript: run the tests again and commit.

use std::path::{Path, PathBuf};

use relaywire_chat::ChatProtocol;
use relaywire_protocol::typescript::{assert_fresh, assert_section_fresh, catalogue_markdown};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

#[test]
fn bindings_are_fresh() {
    assert_fresh(
        &workspace_root().join("bindings/chat.ts"),
        &relaywire_chat::typescript(),
    );
}

#[test]
fn bindings_follow_the_wire_conventions() {
    let text = relaywire_chat::typescript();
    // JSON.parse never produces a bigint.
    assert!(!text.contains("bigint"), "a wire integer became bigint");
    // One convention for optional fields: `field?: T`, never `T | null`.
    assert!(!text.contains("| null"), "an optional field is `T | null`");
    // Self-contained: copied into apps and the npm package as it is.
    assert!(
        !text.contains("import "),
        "chat.ts must not import anything"
    );
    // Arbitrary JSON is `unknown`, not `any` or a JsonValue import.
    assert!(!text.contains(": any") && !text.contains("<any"));
    assert!(!text.contains("JsonValue"));
    // The descriptor carries every class the clients act on.
    assert!(text.contains(r#""chat:message": { delivery: "durable" }"#));
    assert!(text.contains(
        r#""chat:typing": { delivery: "ephemeral", key: "chatId", active: "isTyping" }"#
    ));
    assert!(text.contains(r#""chat:join": { delivery: "request", joins: "chatId" }"#));
    assert!(text.contains(r#""chat:read": { numbered: true }"#));
    assert!(
        text.contains(
            "export type ChatProtocol = { client: ClientMessage; server: ServerMessage };"
        )
    );
}

#[test]
fn readme_tables_match_the_catalogue() {
    let table = catalogue_markdown::<ChatProtocol>();
    for readme in ["README.md", "chat/README.md"] {
        assert_section_fresh(&workspace_root().join(readme), "catalogue", &table);
    }
}
