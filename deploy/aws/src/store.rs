//! The store on DynamoDB: one table, every write that must be atomic in one
//! `TransactWriteItems`, numbering by optimistic counters. `DYNAMODB.md` beside this
//! crate's README says why each item is keyed as it is.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, KeySchemaElement,
    KeyType, KeysAndAttributes, Put, ReturnValue, ScalarAttributeType, TransactWriteItem, Update,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use relaywire_protocol::Seq;
use relaywire_server::store::{
    AnswerKey, Audience, Cursor, EventCursor, EventPage, FollowUp, JoinRule, NewRoom, Publish,
    Published, Room, RoomFilter, SessionStart, Store, StoreError, StoreResult, StoredEvent,
    with_seq,
};

/// An item: attribute names and values.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The most actions DynamoDB takes in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// How often a write whose optimistic counter moved (another writer numbered first) is
/// tried again before the store reports itself unavailable.
const MAX_ATTEMPTS: u32 = 12;

/// The store on one DynamoDB table (see `DYNAMODB.md`).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// What an action of a transaction is, to read its cancellation by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The sender must be a member.
    Member,
    /// The durable message's answer record: taken already means handled before.
    Answer,
    /// The event's id: taken already means another event has it.
    EventId,
    /// The room must exist (a new room: must not).
    Room,
    /// An optimistic counter or position: another writer moved it, try again.
    Counter,
    /// Anything else.
    Plain,
}

/// A transaction being built: its actions and what each is.
#[derive(Default)]
struct Transaction {
    items: Vec<TransactWriteItem>,
    roles: Vec<Role>,
}

impl Transaction {
    fn put(&mut self, table: &str, item: Item, condition: Option<&str>, values: Item, role: Role) {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build();
        self.push(TransactWriteItem::builder().set_put(put.ok()).build(), role);
    }

    fn update(
        &mut self,
        table: &str,
        key: Item,
        set: &str,
        condition: Option<&str>,
        values: Item,
        role: Role,
    ) {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(set)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build();
        self.push(
            TransactWriteItem::builder().set_update(update.ok()).build(),
            role,
        );
    }

    fn check(&mut self, table: &str, key: Item, condition: &str, role: Role) {
        let check = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(key))
            .condition_expression(condition)
            .build();
        self.push(
            TransactWriteItem::builder()
                .set_condition_check(check.ok())
                .build(),
            role,
        );
    }

    fn delete(&mut self, table: &str, key: Item, condition: Option<&str>, role: Role) {
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned))
            .build();
        self.push(
            TransactWriteItem::builder().set_delete(delete.ok()).build(),
            role,
        );
    }

    fn push(&mut self, item: TransactWriteItem, role: Role) {
        self.items.push(item);
        self.roles.push(role);
    }
}

/// How a transaction ended.
enum Outcome {
    Committed,
    /// A condition failed: the first failing action's role.
    Refused(Role),
    /// Another transaction touched the same items: try again.
    Conflict,
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

pub(crate) fn values<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

pub(crate) fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)?.as_s().ok().cloned()
}

pub(crate) fn number(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn room_pk(room_id: &str) -> String {
    format!("room#{room_id}")
}

fn user_pk(user_id: &str) -> String {
    format!("user#{user_id}")
}

/// A sort key that orders as its number does.
fn padded(prefix: &str, value: u64) -> String {
    format!("{prefix}#{value:020}")
}

fn seq(value: u64) -> StoreResult<Seq> {
    Seq::new(value).map_err(|err| StoreError::Backend(err.to_string()))
}

/// A failed request: unavailable when trying again may work (the service was out of
/// reach, throttled, or failed inside), a backend failure otherwise.
pub(crate) fn failed<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> StoreError {
    const TRANSIENT: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    ];
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("DynamoDB: {err:?}"))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown");
            if TRANSIENT.contains(&code) {
                StoreError::Unavailable(format!("DynamoDB: {code}"))
            } else {
                let message = service.err().message().unwrap_or_default();
                StoreError::Backend(format!("DynamoDB: {code}: {message}"))
            }
        }
        _ => StoreError::Backend(format!("DynamoDB: {err:?}")),
    }
}

/// A short pause before trying a transaction again, growing with the attempt.
async fn pause(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(8)) * 5)).await;
}

impl DynamoStore {
    /// The store on `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table (string keys `pk` and `sk`, on demand): for local emulators
    /// and tests; a deployment's template creates it.
    pub async fn create_table(&self) -> StoreResult<()> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        let built = (|| {
            Ok::<_, aws_sdk_dynamodb::error::BuildError>((
                vec![attribute("pk")?, attribute("sk")?],
                vec![key("pk", KeyType::Hash)?, key("sk", KeyType::Range)?],
            ))
        })();
        let (attributes, keys) = built.map_err(|err| StoreError::Backend(err.to_string()))?;
        self.client
            .create_table()
            .table_name(&self.table)
            .set_attribute_definitions(Some(attributes))
            .set_key_schema(Some(keys))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn get(&self, key: Item) -> StoreResult<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(failed)?;
        Ok(output.item().cloned())
    }

    /// Every item of a partition whose sort key starts with `prefix` (and lies within
    /// `range`, both ends included, when given), in sort key order or reversed, up to
    /// `limit`, keeping only those `keep` accepts.
    async fn query(
        &self,
        pk: String,
        prefix: &str,
        range: Option<(String, String)>,
        forward: bool,
        limit: usize,
        keep: impl Fn(&Item) -> bool,
    ) -> StoreResult<Vec<Item>> {
        // DynamoDB refuses a value the expression does not use, and a range whose ends
        // are reversed: bind exactly what each form uses.
        let (condition, bound) = match range {
            None => (
                "pk = :pk AND begins_with(sk, :prefix)",
                values([(":pk", s(pk)), (":prefix", s(prefix))]),
            ),
            Some((low, high)) if low > high => return Ok(Vec::new()),
            Some((low, high)) => (
                "pk = :pk AND sk BETWEEN :low AND :high",
                values([(":pk", s(pk)), (":low", s(low)), (":high", s(high))]),
            ),
        };
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(condition)
                .set_expression_attribute_values(Some(bound.clone()))
                .consistent_read(true)
                .scan_index_forward(forward)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(failed)?;
            for item in output.items() {
                let in_range = text(item, "sk").is_some_and(|sk| sk.starts_with(prefix));
                if in_range && keep(item) {
                    found.push(item.clone());
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
            match output.last_evaluated_key() {
                Some(next) => start = Some(next.clone()),
                None => return Ok(found),
            }
        }
    }

    async fn transact(&self, transaction: Transaction) -> StoreResult<Outcome> {
        if transaction.items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Backend(format!(
                "this write needs {} DynamoDB actions, more than a transaction takes ({MAX_TRANSACTION_ITEMS})",
                transaction.items.len()
            )));
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction.items))
            .send()
            .await;
        let Err(err) = result else {
            return Ok(Outcome::Committed);
        };
        if let SdkError::ServiceError(service) = &err
            && let aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(canceled) =
                service.err()
        {
            let reasons = canceled.cancellation_reasons();
            let refused = reasons.iter().zip(&transaction.roles).find_map(|(reason, role)| {
                (reason.code() == Some("ConditionalCheckFailed")).then_some(*role)
            });
            return Ok(match refused {
                Some(Role::Counter) | None => Outcome::Conflict,
                Some(role) => Outcome::Refused(role),
            });
        }
        if let SdkError::ServiceError(service) = &err
            && service.err().code() == Some("TransactionConflictException")
        {
            return Ok(Outcome::Conflict);
        }
        Err(failed(err))
    }

    /// The room's item, or `RoomNotFound`.
    async fn room_item(&self, room_id: &str) -> StoreResult<Item> {
        self.get(key(room_pk(room_id), "room"))
            .await?
            .ok_or_else(|| StoreError::RoomNotFound(room_id.to_owned()))
    }

    /// A room's members, in the order they joined.
    async fn members(&self, room_id: &str) -> StoreResult<Vec<String>> {
        let items = self
            .query(room_pk(room_id), "member#", None, true, usize::MAX, |_| {
                true
            })
            .await?;
        let mut members: Vec<(u64, String)> = items
            .iter()
            .filter_map(|item| Some((number(item, "joined"), text(item, "user")?)))
            .collect();
        members.sort();
        Ok(members.into_iter().map(|(_, user)| user).collect())
    }

    /// An event's room and position, or `EventNotFound` (also for another room's).
    async fn position(&self, room_id: &str, event_id: &str) -> StoreResult<u64> {
        let item = self.get(key(format!("event#{event_id}"), "event")).await?;
        match item {
            Some(item) if text(&item, "room").as_deref() == Some(room_id) => {
                Ok(number(&item, "pos"))
            }
            _ => Err(StoreError::EventNotFound(event_id.to_owned())),
        }
    }

    async fn cursor(
        &self,
        room_id: &str,
        kind: &str,
        user_id: &str,
    ) -> StoreResult<Option<(u64, Cursor)>> {
        let item = self
            .get(key(room_pk(room_id), format!("cursor#{kind}#{user_id}")))
            .await?;
        Ok(item.map(|item| {
            (
                number(&item, "cursorPos"),
                Cursor {
                    room_id: room_id.to_owned(),
                    user_id: user_id.to_owned(),
                    kind: kind.to_owned(),
                    event_id: text(&item, "event").unwrap_or_default(),
                    at: text(&item, "at").unwrap_or_default(),
                },
            )
        }))
    }

    /// The answer recorded under `key`: `IdReused` when it was for another message.
    async fn recorded(&self, answer: &AnswerKey) -> StoreResult<Option<Option<String>>> {
        let item = self
            .get(key(
                user_pk(&answer.user_id),
                format!("answer#{}", answer.client_id),
            ))
            .await?;
        match item {
            None => Ok(None),
            Some(item) if text(&item, "fingerprint").as_deref() == Some(&answer.fingerprint) => {
                Ok(Some(text(&item, "answer")))
            }
            Some(_) => Err(StoreError::IdReused(answer.client_id.clone())),
        }
    }

    fn answer_put(
        &self,
        transaction: &mut Transaction,
        answer: &AnswerKey,
        given: Option<&str>,
        at: &str,
    ) {
        let mut item = key(
            user_pk(&answer.user_id),
            format!("answer#{}", answer.client_id),
        );
        item.insert("fingerprint".into(), s(&answer.fingerprint));
        item.insert("at".into(), s(at));
        if let Some(given) = given {
            item.insert("answer".into(), s(given));
        }
        transaction.put(
            &self.table,
            item,
            Some("attribute_not_exists(pk)"),
            Item::new(),
            Role::Answer,
        );
    }

    /// The heads of these users' streams (0 for a user with none yet).
    async fn heads(&self, users: &[String]) -> StoreResult<HashMap<String, u64>> {
        let mut heads = HashMap::new();
        for chunk in users.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|user| key(user_pk(user), "user"))
                .collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|err| StoreError::Backend(err.to_string()))?,
            );
            while let Some(request) = pending.take() {
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(failed)?;
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(user) =
                        text(item, "pk").and_then(|pk| pk.strip_prefix("user#").map(str::to_owned))
                    {
                        heads.insert(user, number(item, "seqHead"));
                    }
                }
                pending = output
                    .unprocessed_keys()
                    .and_then(|keys| keys.get(&self.table))
                    .filter(|keys| !keys.keys().is_empty())
                    .cloned();
            }
        }
        Ok(heads)
    }

    async fn publish_once(&self, publish: &Publish) -> StoreResult<Option<Published>> {
        let table = &self.table;
        let mut transaction = Transaction::default();
        if let Some(answer) = &publish.answer_key
            && let Some(given) = self.recorded(answer).await?
        {
            return Ok(Some(Published::Duplicate { answer: given }));
        }
        if let (Some(user_id), Some(room_id)) = (&publish.require_member, &publish.room_id) {
            transaction.check(
                table,
                key(room_pk(room_id), format!("member#{user_id}")),
                "attribute_exists(pk)",
                Role::Member,
            );
        }
        if let Some(cursor) = &publish.cursor {
            let target = self.position(&cursor.room_id, &cursor.event_id).await?;
            let current = self
                .cursor(&cursor.room_id, &cursor.kind, &cursor.user_id)
                .await?;
            if let Some((at, current)) = &current
                && *at >= target
            {
                return Ok(Some(Published::CursorUnchanged(current.clone())));
            }
            let mut item = key(
                room_pk(&cursor.room_id),
                format!("cursor#{}#{}", cursor.kind, cursor.user_id),
            );
            item.insert("event".into(), s(&cursor.event_id));
            item.insert("cursorPos".into(), n(target));
            item.insert("at".into(), s(&publish.at));
            item.insert("user".into(), s(&cursor.user_id));
            let (condition, bound) = match current {
                Some((at, _)) => ("cursorPos = :was", values([(":was", n(at))])),
                None => ("attribute_not_exists(pk)", Item::new()),
            };
            transaction.put(table, item, Some(condition), bound, Role::Counter);
        }
        // The event's place in its room's history.
        let mut position = 0;
        if let Some(room_id) = &publish.room_id {
            let room = self.room_item(room_id).await?;
            let last = number(&room, "eventCount");
            position = last + 1;
            transaction.update(
                table,
                key(room_pk(room_id), "room"),
                "SET eventCount = :next",
                Some("eventCount = :last"),
                values([(":next", n(position)), (":last", n(last))]),
                Role::Counter,
            );
            let mut event = key(room_pk(room_id), padded("event", position));
            event.insert("id".into(), s(&publish.event_id));
            event.insert("kind".into(), s(&publish.kind));
            event.insert("frame".into(), s(&publish.frame));
            event.insert("at".into(), s(&publish.at));
            transaction.put(table, event, None, Item::new(), Role::Plain);
        }
        let mut event_id = key(format!("event#{}", publish.event_id), "event");
        event_id.insert("pos".into(), n(position));
        if let Some(room_id) = &publish.room_id {
            event_id.insert("room".into(), s(room_id));
        }
        transaction.put(
            table,
            event_id,
            Some("attribute_not_exists(pk)"),
            Item::new(),
            Role::EventId,
        );
        if let Some(answer) = &publish.answer_key {
            self.answer_put(
                &mut transaction,
                answer,
                Some(&publish.event_id),
                &publish.at,
            );
        }
        let audience: Vec<String> = match &publish.audience {
            Audience::Room(room_id) => self.members(room_id).await?,
            Audience::Users(users) => users
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let heads = self.heads(&audience).await?;
        let mut recipients = Vec::with_capacity(audience.len());
        for user in audience {
            let head = heads.get(&user).copied().unwrap_or(0);
            let next = head + 1;
            let condition = if head == 0 {
                "attribute_not_exists(seqHead) OR seqHead = :head"
            } else {
                "seqHead = :head"
            };
            transaction.update(
                table,
                key(user_pk(&user), "user"),
                "SET seqHead = :next",
                Some(condition),
                values([(":next", n(next)), (":head", n(head))]),
                Role::Counter,
            );
            let mut inbox = key(user_pk(&user), padded("seq", next));
            inbox.insert("frame".into(), s(&publish.frame));
            inbox.insert("event".into(), s(&publish.event_id));
            transaction.put(table, inbox, None, Item::new(), Role::Plain);
            recipients.push((user, seq(next)?));
        }
        Ok(match self.transact(transaction).await? {
            Outcome::Committed => Some(Published::Stored {
                event_id: publish.event_id.clone(),
                recipients,
                frame: publish.frame.clone(),
            }),
            Outcome::Conflict => None,
            Outcome::Refused(Role::Member) => {
                let room = publish.room_id.clone().unwrap_or_default();
                return Err(StoreError::NotMember(room));
            }
            Outcome::Refused(Role::EventId) => {
                return Err(StoreError::EventExists(publish.event_id.clone()));
            }
            // Handled meanwhile: the next attempt finds its answer.
            Outcome::Refused(_) => None,
        })
    }

    async fn publish_now(&self, publish: Publish) -> StoreResult<Published> {
        for attempt in 0..MAX_ATTEMPTS {
            if let Some(published) = self.publish_once(&publish).await? {
                return Ok(published);
            }
            pause(attempt).await;
        }
        Err(StoreError::Unavailable(
            "DynamoDB: the event's counters kept moving; try again".into(),
        ))
    }

    async fn open_session_now(
        &self,
        user_id: String,
        name: String,
        resume_after: Option<Seq>,
        replay_limit: usize,
    ) -> StoreResult<SessionStart> {
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(&user_id), "user")))
            .update_expression("SET #name = :name")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(name))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(failed)?;
        let user = output.attributes().cloned().unwrap_or_default();
        let mut rooms: Vec<String> = user
            .get("roomIds")
            .and_then(|rooms| rooms.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        rooms.sort();
        let head = number(&user, "seqHead");
        let (missed, truncated) = match resume_after {
            Some(after) if after.get() < head => {
                let events = self
                    .stream(&user_id, after.get(), head, replay_limit.saturating_add(1))
                    .await?;
                let truncated = events.len() > replay_limit;
                (events.into_iter().take(replay_limit).collect(), truncated)
            }
            _ => (Vec::new(), false),
        };
        Ok(SessionStart {
            rooms,
            head: seq(head)?,
            missed,
            truncated,
        })
    }

    /// A user's events numbered after `after` up to `up_to`, with `seq` in each frame.
    async fn stream(
        &self,
        user_id: &str,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> StoreResult<Vec<(Seq, String)>> {
        let range = Some((padded("seq", after + 1), padded("seq", up_to)));
        let items = self
            .query(user_pk(user_id), "seq#", range, true, limit, |_| true)
            .await?;
        items
            .iter()
            .map(|item| {
                let number = text(item, "sk")
                    .and_then(|sk| sk.strip_prefix("seq#").and_then(|n| n.parse().ok()))
                    .unwrap_or(0);
                let numbered = seq(number)?;
                Ok((
                    numbered,
                    with_seq(&text(item, "frame").unwrap_or_default(), numbered),
                ))
            })
            .collect()
    }

    async fn create_room_now(&self, room: NewRoom) -> StoreResult<Room> {
        let table = &self.table;
        let created_at = relaywire_server::now_rfc3339();
        let mut transaction = Transaction::default();
        let mut item = key(room_pk(&room.id), "room");
        item.insert("id".into(), s(&room.id));
        item.insert("title".into(), s(&room.title));
        item.insert("open".into(), AttributeValue::Bool(room.open));
        item.insert("createdAt".into(), s(&created_at));
        item.insert("eventCount".into(), n(0));
        transaction.put(
            table,
            item,
            Some("attribute_not_exists(pk)"),
            Item::new(),
            Role::Room,
        );
        let members: Vec<String> = {
            let mut seen = BTreeSet::new();
            room.members
                .iter()
                .filter(|m| seen.insert(m.as_str()))
                .cloned()
                .collect()
        };
        for (index, member) in members.iter().enumerate() {
            self.member_put(&mut transaction, &room.id, member, index as u64);
        }
        match self.transact(transaction).await? {
            Outcome::Committed => Ok(Room {
                id: room.id,
                title: room.title,
                open: room.open,
                created_at,
                members,
            }),
            Outcome::Refused(Role::Room) => Err(StoreError::RoomExists(room.id)),
            // Another transaction held one of its items: nothing was written.
            Outcome::Conflict => Err(StoreError::Unavailable(
                "DynamoDB: creating the room conflicted; try again".into(),
            )),
            Outcome::Refused(_) => Err(StoreError::Backend("creating the room was refused".into())),
        }
    }

    /// Adds a membership: its item, and the room in the user's set of rooms.
    fn member_put(&self, transaction: &mut Transaction, room_id: &str, user_id: &str, order: u64) {
        let mut member = key(room_pk(room_id), format!("member#{user_id}"));
        member.insert("user".into(), s(user_id));
        member.insert("joined".into(), n(joined_stamp() + order));
        transaction.put(
            &self.table,
            member,
            Some("attribute_not_exists(pk)"),
            Item::new(),
            Role::Member,
        );
        transaction.update(
            &self.table,
            key(user_pk(user_id), "user"),
            "ADD roomIds :room",
            None,
            values([(":room", AttributeValue::Ss(vec![room_id.to_owned()]))]),
            Role::Plain,
        );
    }

    async fn join_now(
        &self,
        room_id: String,
        user_id: String,
        rule: JoinRule,
    ) -> StoreResult<bool> {
        let room = self.room_item(&room_id).await?;
        let open = room
            .get("open")
            .and_then(|open| open.as_bool().ok())
            .copied()
            .unwrap_or(false);
        if rule == JoinRule::OpenOnly && !open {
            return Err(StoreError::RoomClosed(room_id));
        }
        let mut transaction = Transaction::default();
        self.member_put(&mut transaction, &room_id, &user_id, 0);
        match self.transact(transaction).await? {
            Outcome::Committed => Ok(true),
            Outcome::Refused(Role::Member) => Ok(false),
            _ => Err(StoreError::Unavailable(
                "DynamoDB: the join conflicted; try again".into(),
            )),
        }
    }

    async fn leave_now(&self, room_id: String, user_id: String) -> StoreResult<()> {
        let mut transaction = Transaction::default();
        transaction.delete(
            &self.table,
            key(room_pk(&room_id), format!("member#{user_id}")),
            Some("attribute_exists(pk)"),
            Role::Member,
        );
        transaction.update(
            &self.table,
            key(user_pk(&user_id), "user"),
            "DELETE roomIds :room",
            None,
            values([(":room", AttributeValue::Ss(vec![room_id.clone()]))]),
            Role::Plain,
        );
        match self.transact(transaction).await? {
            Outcome::Committed => Ok(()),
            Outcome::Refused(Role::Member) => Err(StoreError::NotMember(room_id)),
            _ => Err(StoreError::Unavailable(
                "DynamoDB: leaving conflicted; try again".into(),
            )),
        }
    }

    async fn room_now(&self, room_id: String) -> StoreResult<Room> {
        let item = self.room_item(&room_id).await?;
        Ok(room_of(&item, self.members(&room_id).await?))
    }

    async fn rooms_now(&self, filter: RoomFilter) -> StoreResult<Vec<Room>> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :room")
                .expression_attribute_values(":room", s("room"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(failed)?;
            found.extend(output.items().iter().cloned());
            match output.last_evaluated_key() {
                Some(next) => start = Some(next.clone()),
                None => break,
            }
        }
        let mut rooms = Vec::with_capacity(found.len());
        for item in found {
            let id = text(&item, "id").unwrap_or_default();
            let room = room_of(&item, self.members(&id).await?);
            let visible = match &filter {
                RoomFilter::All => true,
                RoomFilter::VisibleTo(user) => room.open || room.members.contains(user),
            };
            if visible {
                rooms.push(room);
            }
        }
        rooms.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(rooms)
    }

    async fn events_now(
        &self,
        room_id: String,
        kind: String,
        cursor: EventCursor,
        limit: usize,
    ) -> StoreResult<EventPage> {
        self.room_item(&room_id).await?;
        let fetch = limit.saturating_add(1);
        let of_kind = |item: &Item| text(item, "kind").as_deref() == Some(kind.as_str());
        let pk = room_pk(&room_id);
        // Positions are whole numbers: before `p` ends at `p - 1`, after it starts at
        // `p + 1`, and `~` sorts after every digit.
        let (range, forward) = match &cursor {
            EventCursor::Latest => (None, false),
            EventCursor::Before(id) => {
                let position = self.position(&room_id, id).await?;
                let high = padded("event", position.saturating_sub(1));
                (Some(("event#".to_owned(), high)), false)
            }
            EventCursor::After(id) => {
                let position = self.position(&room_id, id).await?;
                let low = padded("event", position + 1);
                (Some((low, "event#~".to_owned())), true)
            }
        };
        let mut items = self
            .query(pk, "event#", range, forward, fetch, of_kind)
            .await?;
        let has_more = items.len() > limit;
        items.truncate(limit);
        if !forward {
            items.reverse();
        }
        let events = items
            .iter()
            .map(|item| StoredEvent {
                id: text(item, "id").unwrap_or_default(),
                room_id: Some(room_id.clone()),
                kind: text(item, "kind").unwrap_or_default(),
                frame: text(item, "frame").unwrap_or_default(),
                at: text(item, "at").unwrap_or_default(),
            })
            .collect();
        Ok(EventPage { events, has_more })
    }

    async fn cursors_now(&self, room_id: String, kind: String) -> StoreResult<Vec<Cursor>> {
        let prefix = format!("cursor#{kind}#");
        let items = self
            .query(room_pk(&room_id), &prefix, None, true, usize::MAX, |_| true)
            .await?;
        Ok(items
            .iter()
            .map(|item| Cursor {
                room_id: room_id.clone(),
                user_id: text(item, "user").unwrap_or_default(),
                kind: kind.clone(),
                event_id: text(item, "event").unwrap_or_default(),
                at: text(item, "at").unwrap_or_default(),
            })
            .collect())
    }

    async fn user_rooms_now(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let item = self
            .get(key(user_pk(user_id), "user"))
            .await?
            .unwrap_or_default();
        let mut rooms: Vec<String> = item
            .get("roomIds")
            .and_then(|rooms| rooms.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        rooms.sort();
        Ok(rooms)
    }

    async fn forget_answers_now(&self, before: String) -> StoreResult<usize> {
        let mut forgotten = 0;
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(sk, :answer) AND #at < :before")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":answer", s("answer#"))
                .expression_attribute_values(":before", s(&before))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(failed)?;
            for item in output.items() {
                let (Some(pk), Some(sk)) = (text(item, "pk"), text(item, "sk")) else {
                    continue;
                };
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(key(pk, sk)))
                    .send()
                    .await
                    .map_err(failed)?;
                forgotten += 1;
            }
            match output.last_evaluated_key() {
                Some(next) => start = Some(next.clone()),
                None => return Ok(forgotten),
            }
        }
    }

    async fn record_answer_now(&self, answer: AnswerKey, given: Option<String>) -> StoreResult<()> {
        let mut transaction = Transaction::default();
        let at = relaywire_server::now_rfc3339();
        self.answer_put(&mut transaction, &answer, given.as_deref(), &at);
        match self.transact(transaction).await? {
            Outcome::Committed => Ok(()),
            // Recorded before: the same message is fine, another is refused.
            _ => self.recorded(&answer).await.map(|_| ()),
        }
    }
}

/// A stamp that orders joins: microseconds since the epoch.
fn joined_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_micros()).unwrap_or(u64::MAX / 2))
        .unwrap_or(0)
}

fn room_of(item: &Item, members: Vec<String>) -> Room {
    Room {
        id: text(item, "id").unwrap_or_default(),
        title: text(item, "title").unwrap_or_default(),
        open: item
            .get("open")
            .and_then(|open| open.as_bool().ok())
            .copied()
            .unwrap_or(false),
        created_at: text(item, "createdAt").unwrap_or_default(),
        members,
    }
}

/// Runs `then` on what a committed operation returns.
fn following<T>(result: StoreResult<T>, then: FollowUp<T>) -> StoreResult<T> {
    if let Ok(value) = &result {
        then(value);
    }
    result
}

impl Store for DynamoStore {
    fn open_session(
        &self,
        user_id: String,
        name: String,
        resume_after: Option<Seq>,
        replay_limit: usize,
        then: FollowUp<SessionStart>,
    ) -> BoxFuture<'static, StoreResult<SessionStart>> {
        let store = self.clone();
        async move {
            let result = store
                .open_session_now(user_id, name, resume_after, replay_limit)
                .await;
            following(result, then)
        }
        .boxed()
    }

    fn events_between(
        &self,
        user_id: String,
        after: Seq,
        up_to: Seq,
    ) -> BoxFuture<'static, StoreResult<Vec<(Seq, String)>>> {
        let store = self.clone();
        async move {
            store
                .stream(&user_id, after.get(), up_to.get(), usize::MAX)
                .await
        }
        .boxed()
    }

    fn publish(
        &self,
        publish: Publish,
        then: FollowUp<Published>,
    ) -> BoxFuture<'static, StoreResult<Published>> {
        let store = self.clone();
        async move { following(store.publish_now(publish).await, then) }.boxed()
    }

    fn answer(&self, key: AnswerKey) -> BoxFuture<'static, StoreResult<Option<Option<String>>>> {
        let store = self.clone();
        async move { store.recorded(&key).await }.boxed()
    }

    fn forget_answers(&self, before: String) -> BoxFuture<'static, StoreResult<usize>> {
        let store = self.clone();
        async move { store.forget_answers_now(before).await }.boxed()
    }

    fn record_answer(
        &self,
        key: AnswerKey,
        answer: Option<String>,
    ) -> BoxFuture<'static, StoreResult<()>> {
        let store = self.clone();
        async move { store.record_answer_now(key, answer).await }.boxed()
    }

    fn create_room(&self, room: NewRoom) -> BoxFuture<'static, StoreResult<Room>> {
        let store = self.clone();
        async move { store.create_room_now(room).await }.boxed()
    }

    fn join(
        &self,
        room_id: String,
        user_id: String,
        rule: JoinRule,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        let store = self.clone();
        async move { store.join_now(room_id, user_id, rule).await }.boxed()
    }

    fn leave(&self, room_id: String, user_id: String) -> BoxFuture<'static, StoreResult<()>> {
        let store = self.clone();
        async move { store.leave_now(room_id, user_id).await }.boxed()
    }

    fn room(&self, room_id: String) -> BoxFuture<'static, StoreResult<Room>> {
        let store = self.clone();
        async move { store.room_now(room_id).await }.boxed()
    }

    fn rooms(&self, filter: RoomFilter) -> BoxFuture<'static, StoreResult<Vec<Room>>> {
        let store = self.clone();
        async move { store.rooms_now(filter).await }.boxed()
    }

    fn events(
        &self,
        room_id: String,
        kind: String,
        cursor: EventCursor,
        limit: usize,
    ) -> BoxFuture<'static, StoreResult<EventPage>> {
        let store = self.clone();
        async move { store.events_now(room_id, kind, cursor, limit).await }.boxed()
    }

    fn cursors(
        &self,
        room_id: String,
        kind: String,
    ) -> BoxFuture<'static, StoreResult<Vec<Cursor>>> {
        let store = self.clone();
        async move { store.cursors_now(room_id, kind).await }.boxed()
    }

    fn user_rooms(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>> {
        let store = self.clone();
        async move { store.user_rooms_now(&user_id).await }.boxed()
    }

    fn peers(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<String>>> {
        let store = self.clone();
        async move {
            let mut peers = BTreeSet::new();
            for room in store.user_rooms_now(&user_id).await? {
                peers.extend(store.members(&room).await?);
            }
            peers.remove(&user_id);
            Ok(peers.into_iter().collect())
        }
        .boxed()
    }

    fn ping(&self) -> BoxFuture<'static, StoreResult<()>> {
        let store = self.clone();
        async move {
            store
                .client
                .describe_table()
                .table_name(&store.table)
                .send()
                .await
                .map_err(failed)?;
            Ok(())
        }
        .boxed()
    }

    fn orders_follow_ups(&self) -> bool {
        // Invocations commit concurrently.
        false
    }
}
