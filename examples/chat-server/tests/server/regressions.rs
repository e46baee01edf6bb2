//! Every input in `tests/vectors/regressions/` goes through the server's frame handling:
//! nothing panics, and every answer is a valid server message.

use relaywire_chat::decode_server_message;

#[tokio::test]
async fn regression_inputs_get_valid_answers() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/regressions");
    let mut harness = relaywire_chat_server::frame_harness().await;
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name == "README.md") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        let replies = harness.frame(&text).await;
        assert!(!replies.is_empty(), "{}: no answer", path.display());
        for reply in replies {
            decode_server_message(&reply)
                .unwrap_or_else(|e| panic!("{}: {reply}: {e}", path.display()));
        }
        count += 1;
    }
    assert!(count > 0);
}
