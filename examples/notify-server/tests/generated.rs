//! The service's TypeScript stays in step with its catalogue: when `bindings/notify.ts`
//! differs, the test rewrites it and fails.

use std::path::Path;

use relaywire_notify_server::NotifyProtocol;
use relaywire_protocol::typescript::{assert_fresh, assert_section_fresh, catalogue_markdown};

#[test]
fn bindings_are_fresh() {
    let text = relaywire_notify_server::typescript();
    assert!(
        text.contains(r#""message:send": { delivery: "durable" }"#),
        "{text}"
    );
    assert!(text.contains(r#""notification": { numbered: true }"#));
    assert!(text.contains("export type SendToUser = "));
    assert_fresh(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/notify.ts"),
        &text,
    );
}

#[test]
fn readme_table_matches_the_catalogue() {
    assert_section_fresh(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"),
        "catalogue",
        &catalogue_markdown::<NotifyProtocol>(),
    );
}
