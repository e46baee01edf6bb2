//! Any text frame into the server's message handling, as an authenticated connection
//! sends it: nothing panics, and everything the server answers is a valid message.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use relaywire_chat::decode_server_message;
use relaywire_chat_server::{ChatApp, FrameHarness};

/// Inputs handled before the harness (and its store) is built afresh, so state kept
/// from one input to the next stays bounded.
const INPUTS_PER_HARNESS: u32 = 1_000;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    static HARNESS: RefCell<Option<(FrameHarness<ChatApp>, u32)>> = const { RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    RUNTIME.with(|runtime| {
        HARNESS.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot
                .as_ref()
                .is_none_or(|(_, used)| *used >= INPUTS_PER_HARNESS)
            {
                *slot = Some((runtime.block_on(relaywire_chat_server::frame_harness()), 0));
            }
            let Some((harness, used)) = slot.as_mut() else {
                return;
            };
            *used += 1;
            for reply in runtime.block_on(harness.frame(&text)) {
                if let Err(err) = decode_server_message(&reply) {
                    panic!("the server sent an invalid message {reply}: {err}");
                }
            }
        });
    });
});
