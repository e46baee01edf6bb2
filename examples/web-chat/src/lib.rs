//! A chat page written in Rust, on Relaywire's typed browser client
//! (`relaywire_client::web`): sign in with the server's dev login, chat in `general`,
//! see who is online and who is typing, and keep going through a server restart (the
//! client reconnects, sends what waited, and is replayed what it missed).
//!
//! Plain `web-sys` for the page, `gloo-net` for the HTTP API, the client for the
//! socket. `cargo xtask demo --rust` serves it from the chat server.
#![cfg(target_arch = "wasm32")]

use std::cell::Cell;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::{Stream, StreamExt};
use gloo_net::http::Request;
use relaywire_chat::http::MessagePage;
use relaywire_chat::{ChatMessage, ChatProtocol, ServerMessage, TypingIndicator};
use relaywire_client::core::{Auth, Status};
use relaywire_client::web::{Client, Options, Snapshot};
use relaywire_protocol::http::{DevLogin, Session};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{Document, Element, HtmlInputElement};

/// The chat this page shows.
const CHAT: &str = "general";

/// Starts the page when its module is loaded.
#[wasm_bindgen(start)]
pub fn start() {
    spawn_local(async {
        if let Err(err) = run().await {
            web_sys::console::error_1(&err);
        }
    });
}

/// The page's elements.
#[derive(Clone)]
struct Page {
    document: Document,
}

impl Page {
    fn find() -> Result<Page, JsValue> {
        let document = web_sys::window()
            .and_then(|window| window.document())
            .ok_or("no document")?;
        Ok(Page { document })
    }

    fn element(&self, id: &str) -> Element {
        self.document
            .get_element_by_id(id)
            .unwrap_or_else(|| self.document.create_element("div").expect("an element"))
    }

    fn input(&self, id: &str) -> HtmlInputElement {
        self.element(id).unchecked_into()
    }

    fn show(&self, id: &str, shown: bool) {
        self.element(id)
            .toggle_attribute_with_force("hidden", !shown)
            .ok();
    }

    /// Calls `handler` on every `event` of the element `id`, as long as the page lives.
    fn on(&self, id: &str, event: &str, handler: impl FnMut(web_sys::Event) + 'static) {
        let closure = Closure::<dyn FnMut(web_sys::Event)>::new(handler);
        self.element(id)
            .add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())
            .ok();
        // The page's own listeners live as long as the page.
        closure.forget();
    }

    /// Shows the sign-in form and waits for a name.
    async fn ask_name(&self) -> String {
        self.show("login", true);
        let (sender, receiver) = oneshot::channel();
        let sender = Rc::new(Cell::new(Some(sender)));
        let page = self.clone();
        self.on("login", "submit", move |event| {
            event.prevent_default();
            let name = page.input("name").value().trim().to_owned();
            if let (false, Some(sender)) = (name.is_empty(), sender.take()) {
                let _ = sender.send(name);
            }
        });
        receiver.await.unwrap_or_default()
    }

    /// A line of the conversation; `pending` while it waits for the server.
    fn add_message(&self, id: Option<&str>, sender: &str, content: &str, pending: bool) -> Element {
        let item = self.document.create_element("li").expect("an element");
        if let Some(id) = id {
            item.set_attribute("data-id", id).ok();
        }
        if pending {
            item.set_class_name("pending");
        }
        let name = self.document.create_element("b").expect("an element");
        name.set_text_content(Some(sender));
        let text = self.document.create_element("span").expect("an element");
        text.set_text_content(Some(content));
        item.append_child(&name).ok();
        item.append_child(&text).ok();
        self.element("messages").append_child(&item).ok();
        item
    }

    fn has_message(&self, id: &str) -> bool {
        self.document
            .query_selector(&format!("#messages li[data-id=\"{id}\"]"))
            .ok()
            .flatten()
            .is_some()
    }

    /// Adds a stored message unless it is there already (history, echo and replay
    /// may each bring it).
    fn add_stored(&self, message: &ChatMessage) {
        if !self.has_message(&message.id) {
            self.add_message(
                Some(&message.id),
                &message.sender_name,
                &message.content,
                false,
            );
        }
    }

    fn show_state(&self, snapshot: &Snapshot, me: &str) {
        let status = self.element("status");
        let label = snapshot.status.as_str();
        status.set_attribute("data-status", label).ok();
        status.set_text_content(Some(label));
        let others: Vec<&str> = snapshot
            .session
            .iter()
            .flat_map(|session| &session.online_user_ids)
            .map(String::as_str)
            .filter(|user| *user != me)
            .collect();
        let online = if others.is_empty() {
            "Nobody else is online".to_owned()
        } else {
            format!("Online: {}", others.join(", "))
        };
        self.element("online").set_text_content(Some(&online));
    }

    fn show_typing(&self, typing: &TypingIndicator) {
        let text = typing
            .is_typing
            .then(|| format!("{} is typing…", typing.user_name));
        self.element("typing").set_text_content(text.as_deref());
    }
}

/// The signed-in user, from the session cookie.
async fn me() -> Option<Session> {
    let response = Request::get("/api/me").send().await.ok()?;
    if !response.ok() {
        return None;
    }
    response.json().await.ok()
}

/// Signs in with the server's dev login, which sets the session cookie.
async fn sign_in(page: &Page) -> Result<Session, JsValue> {
    loop {
        let name = page.ask_name().await;
        let user_id: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { '-' })
            .collect();
        let login = DevLogin {
            user_id,
            name: Some(name),
        };
        let request = Request::post("/auth/dev-login")
            .json(&login)
            .map_err(|err| err.to_string())?;
        match request.send().await {
            Ok(response) if response.ok() => {
                page.show("login", false);
                return response.json().await.map_err(|err| err.to_string().into());
            }
            Ok(response) => page
                .element("login-error")
                .set_text_content(Some(&format!("Sign-in refused ({})", response.status()))),
            Err(err) => page
                .element("login-error")
                .set_text_content(Some(&err.to_string())),
        }
    }
}

/// The chat's latest messages, from the HTTP API.
async fn history() -> Vec<ChatMessage> {
    let url = format!("/api/chats/{CHAT}/messages?limit=50");
    let Ok(response) = Request::get(&url).send().await else {
        return Vec::new();
    };
    match response.json::<MessagePage>().await {
        Ok(page) => page.messages,
        Err(_) => Vec::new(),
    }
}

async fn follow_state(mut states: impl Stream<Item = Snapshot> + Unpin, page: Page, me: String) {
    while let Some(snapshot) = states.next().await {
        page.show_state(&snapshot, &me);
        if snapshot.status == Status::Unauthorized {
            // The session ended (signed out elsewhere, or expired): sign in again.
            let _ = Request::post("/auth/logout").send().await;
            let location = web_sys::window().map(|window| window.location());
            location.map(|location| location.reload());
        }
    }
}

async fn run() -> Result<(), JsValue> {
    let page = Page::find()?;
    let session = match me().await {
        Some(session) => session,
        None => sign_in(&page).await?,
    };
    page.show("chat", true);

    // The session cookie authenticates; "/ws" is resolved against the page.
    let options = Options::<ChatProtocol>::new("/ws", Auth::Cookie);
    let (client, mut messages) =
        Client::connect(options).map_err(|err| JsValue::from_str(&err.to_string()))?;
    spawn_local(follow_state(
        client.states(),
        page.clone(),
        session.user_id.clone(),
    ));

    // A fresh user is in no chat: join before reading or sending.
    if let Err(err) = client.join_chat(CHAT).await {
        page.element("typing")
            .set_text_content(Some(&format!("Cannot join: {err}")));
    }
    for message in history().await {
        page.add_stored(&message);
    }

    // Sending: the line shows at once, pending until the server has stored it; the
    // client keeps it through a restart and sends it again.
    {
        let (client, page_for_send, me) = (client.clone(), page.clone(), session.name.clone());
        page.on("composer", "submit", move |event| {
            event.prevent_default();
            let draft = page_for_send.input("draft");
            let content = draft.value().trim().to_owned();
            if content.is_empty() {
                return;
            }
            draft.set_value("");
            let line = page_for_send.add_message(None, &me, &content, true);
            let (client, page) = (client.clone(), page_for_send.clone());
            spawn_local(async move {
                match client.send_chat_message(CHAT, content).await {
                    Ok(ack) => match ack.message_id {
                        // The stored copy arrived first: it stands instead.
                        Some(id) if page.has_message(&id) => line.remove(),
                        Some(id) => {
                            line.set_attribute("data-id", &id).ok();
                            line.set_class_name("");
                        }
                        None => line.set_class_name(""),
                    },
                    Err(err) => {
                        line.set_class_name("failed");
                        line.set_attribute("title", &err.to_string()).ok();
                    }
                }
            });
        });
    }
    // Typing: one call per keystroke; the client stops it by itself.
    {
        let client = client.clone();
        page.on("draft", "input", move |_| {
            let client = client.clone();
            spawn_local(async move {
                let _ = client.set_typing(CHAT, true).await;
            });
        });
    }

    while let Some(message) = messages.next().await {
        match message {
            ServerMessage::ChatMessage(created) if created.chat_id == CHAT => {
                page.add_stored(&created.message);
                page.element("typing").set_text_content(None);
            }
            ServerMessage::ChatTyping(typing)
                if typing.chat_id == CHAT && typing.user_id != session.user_id =>
            {
                page.show_typing(&typing);
            }
            _ => {}
        }
    }
    Ok(())
}
