//! Generated files stay in step with the code: `bindings/relaywire.ts` (the control
//! messages every protocol shares) and the error and close code tables of the README.
//! When one differs, the test rewrites it and fails: run the tests again and commit.

use std::path::{Path, PathBuf};

use relaywire_protocol::typescript::{assert_fresh, assert_section_fresh, control_declarations};
use relaywire_protocol::{CloseAction, CloseCode, ErrorCode};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

#[test]
fn control_bindings_are_fresh() {
    let text = control_declarations();
    assert!(!text.contains("import ") && !text.contains("bigint") && !text.contains("| null"));
    assert_fresh(&workspace_root().join("bindings/relaywire.ts"), &text);
}

fn close_code_table() -> String {
    let mut table = String::from("| code | name | a client then |\n|---|---|---|\n");
    for code in CloseCode::ALL {
        let action = match code.action() {
            CloseAction::Reconnect => "reconnects with backoff",
            CloseAction::ReconnectSoon => {
                "reconnects at once (jittered) after a healthy connection, then with backoff"
            }
            CloseAction::RefreshToken => {
                "gets a fresh token once and reconnects; stops if that fails too"
            }
            CloseAction::Stop => "stops",
        };
        let observed = if code.is_sendable() {
            ""
        } else {
            " (observed only)"
        };
        table.push_str(&format!(
            "| {} | {}{observed} | {action} |\n",
            code.code(),
            code.reason()
        ));
    }
    table.push_str("| other 4000–4499 | unknown | reconnects with backoff |\n");
    table.push_str("| other 4500–4999 | unknown | stops |\n");
    table
}

fn error_code_table() -> String {
    let mut table = String::from("| code | HTTP status | retryable |\n|---|---|---|\n");
    for code in ErrorCode::ALL {
        let retryable = if code.is_retryable() { "yes" } else { "no" };
        table.push_str(&format!(
            "| `{}` | {} | {retryable} |\n",
            code.as_str(),
            code.http_status()
        ));
    }
    table
}

#[test]
fn readme_tables_match_the_code() {
    let readme = workspace_root().join("protocol/README.md");
    assert_section_fresh(&readme, "close-codes", &close_code_table());
    assert_section_fresh(&readme, "error-codes", &error_code_table());
}
