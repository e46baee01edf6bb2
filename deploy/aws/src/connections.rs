//! The table of connections API Gateway holds: one item per connection, keyed by its
//! id, with an index by user (sparse: a connection that has not authenticated yet has
//! no `userId` and is not in it). `DYNAMODB.md` says why.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use relaywire_protocol::Seq;
use relaywire_server::Identity;
use relaywire_server::gateway::{
    ConnectionTable, GatewayConnection, expiry_from_secs, expiry_secs,
};
use relaywire_server::store::{StoreError, StoreResult};

use crate::store::{Item, failed, n, number, s, text, values};

/// The index of connections by user.
pub const USER_INDEX: &str = "byUser";

/// How long a row outlives its connection's start: API Gateway closes every connection
/// after 2 hours, and a row whose `$disconnect` never ran expires an hour after that.
const ROW_TTL_SECS: u64 = 3 * 60 * 60;

/// The connections on a DynamoDB table of their own.
#[derive(Debug, Clone)]
pub struct DynamoConnections {
    client: Client,
    table: String,
}

fn row(connection: &GatewayConnection) -> Item {
    let mut item = values([
        ("connectionId", s(&connection.connection_id)),
        ("connectedAt", n(connection.connected_at_ms)),
        ("lastActivity", n(connection.last_activity_ms)),
        ("ttl", n(connection.connected_at_ms / 1000 + ROW_TTL_SECS)),
    ]);
    if let Some(identity) = &connection.identity {
        item.insert("userId".into(), s(&identity.user_id));
        item.insert("name".into(), s(&identity.name));
        if !identity.roles.is_empty() {
            item.insert("roles".into(), AttributeValue::Ss(identity.roles.clone()));
        }
        if let Some(expires) = expiry_secs(identity) {
            item.insert("expiresAt".into(), n(expires));
        }
    }
    if let Some(resume) = connection.resume_after {
        item.insert("resumeAfter".into(), n(resume.get()));
    }
    if let Some(sent) = connection.sent {
        item.insert("sent".into(), n(sent.get()));
    }
    item
}

fn optional_seq(item: &Item, name: &str) -> Option<Seq> {
    item.contains_key(name)
        .then(|| Seq::new(number(item, name)).ok())
        .flatten()
}

fn connection_of(item: &Item) -> GatewayConnection {
    let identity = text(item, "userId").map(|user_id| Identity {
        name: text(item, "name").unwrap_or_else(|| user_id.clone()),
        user_id,
        roles: item
            .get("roles")
            .and_then(|roles| roles.as_ss().ok())
            .cloned()
            .unwrap_or_default(),
        expires_at: expiry_from_secs(
            item.contains_key("expiresAt")
                .then(|| number(item, "expiresAt")),
        ),
    });
    GatewayConnection {
        connection_id: text(item, "connectionId").unwrap_or_default(),
        identity,
        resume_after: optional_seq(item, "resumeAfter"),
        sent: optional_seq(item, "sent"),
        connected_at_ms: number(item, "connectedAt"),
        last_activity_ms: number(item, "lastActivity"),
    }
}

/// Whether a write was refused by its condition (the row moved on, or is gone).
fn condition_failed<E: ProvideErrorMetadata, R>(
    err: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    err.as_service_error().and_then(|err| err.code()) == Some("ConditionalCheckFailedException")
}

fn id_key(connection_id: String) -> Item {
    HashMap::from([("connectionId".to_owned(), s(connection_id))])
}

impl DynamoConnections {
    /// The connections on `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Creates the table (key `connectionId`, index [`USER_INDEX`] on `userId`, on
    /// demand): for local emulators and tests; a deployment's template creates it.
    pub async fn create_table(&self) -> StoreResult<()> {
        let built = (|| {
            let attribute = |name: &str| {
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
            };
            let hash = |name: &str| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(KeyType::Hash)
                    .build()
            };
            let index = GlobalSecondaryIndex::builder()
                .index_name(USER_INDEX)
                .key_schema(hash("userId")?)
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::All)
                        .build(),
                )
                .build()?;
            Ok::<_, aws_sdk_dynamodb::error::BuildError>((
                vec![attribute("connectionId")?, attribute("userId")?],
                hash("connectionId")?,
                index,
            ))
        })();
        let (attributes, key, index) = built.map_err(|err| StoreError::Backend(err.to_string()))?;
        self.client
            .create_table()
            .table_name(&self.table)
            .set_attribute_definitions(Some(attributes))
            .key_schema(key)
            .global_secondary_indexes(index)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn read_all(&self, by_user: Option<String>) -> StoreResult<Vec<GatewayConnection>> {
        let mut connections = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = match &by_user {
                Some(user_id) => {
                    let output = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name(USER_INDEX)
                        .key_condition_expression("userId = :user")
                        .expression_attribute_values(":user", s(user_id))
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(failed)?;
                    (
                        output.items().to_vec(),
                        output.last_evaluated_key().cloned(),
                    )
                }
                None => {
                    let output = self
                        .client
                        .scan()
                        .table_name(&self.table)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(failed)?;
                    (
                        output.items().to_vec(),
                        output.last_evaluated_key().cloned(),
                    )
                }
            };
            connections.extend(page.0.iter().map(connection_of));
            match page.1 {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(connections),
            }
        }
    }
}

impl ConnectionTable for DynamoConnections {
    fn insert(&self, connection: GatewayConnection) -> BoxFuture<'static, StoreResult<()>> {
        let this = self.clone();
        async move {
            this.client
                .put_item()
                .table_name(&this.table)
                .set_item(Some(row(&connection)))
                .send()
                .await
                .map_err(failed)?;
            Ok(())
        }
        .boxed()
    }

    fn get(
        &self,
        connection_id: String,
    ) -> BoxFuture<'static, StoreResult<Option<GatewayConnection>>> {
        let this = self.clone();
        async move {
            let output = this
                .client
                .get_item()
                .table_name(&this.table)
                .set_key(Some(id_key(connection_id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(failed)?;
            Ok(output.item().map(connection_of))
        }
        .boxed()
    }

    fn remove(&self, connection_id: String) -> BoxFuture<'static, StoreResult<()>> {
        let this = self.clone();
        async move {
            this.client
                .delete_item()
                .table_name(&this.table)
                .set_key(Some(id_key(connection_id)))
                .send()
                .await
                .map_err(failed)?;
            Ok(())
        }
        .boxed()
    }

    fn of_user(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>> {
        let this = self.clone();
        async move { this.read_all(Some(user_id)).await }.boxed()
    }

    fn all(&self) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>> {
        let this = self.clone();
        async move { this.read_all(None).await }.boxed()
    }

    fn replace(
        &self,
        connection: GatewayConnection,
        expected: Option<Seq>,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        let this = self.clone();
        async move {
            let request = this
                .client
                .put_item()
                .table_name(&this.table)
                .set_item(Some(row(&connection)));
            let request = match expected {
                Some(sent) => request
                    .condition_expression("attribute_exists(connectionId) AND sent = :sent")
                    .expression_attribute_values(":sent", n(sent.get())),
                None => request.condition_expression(
                    "attribute_exists(connectionId) AND attribute_not_exists(sent)",
                ),
            };
            match request.send().await {
                Ok(_) => Ok(true),
                Err(err) if condition_failed(&err) => Ok(false),
                Err(err) => Err(failed(err)),
            }
        }
        .boxed()
    }

    fn renew(
        &self,
        connection_id: String,
        identity: Identity,
    ) -> BoxFuture<'static, StoreResult<bool>> {
        let this = self.clone();
        async move {
            // `name` and `roles` are DynamoDB reserved words.
            let mut set = vec!["userId = :user", "#name = :name"];
            let mut remove = Vec::new();
            let mut request = this
                .client
                .update_item()
                .table_name(&this.table)
                .set_key(Some(id_key(connection_id)))
                .condition_expression("attribute_exists(connectionId)")
                .expression_attribute_names("#name", "name")
                .expression_attribute_names("#roles", "roles")
                .expression_attribute_values(":user", s(&identity.user_id))
                .expression_attribute_values(":name", s(&identity.name));
            if identity.roles.is_empty() {
                remove.push("#roles");
            } else {
                set.push("#roles = :roles");
                request = request.expression_attribute_values(
                    ":roles",
                    AttributeValue::Ss(identity.roles.clone()),
                );
            }
            match expiry_secs(&identity) {
                Some(expires) => {
                    set.push("expiresAt = :expires");
                    request = request.expression_attribute_values(":expires", n(expires));
                }
                None => remove.push("expiresAt"),
            }
            let mut update = format!("SET {}", set.join(", "));
            if !remove.is_empty() {
                update.push_str(" REMOVE ");
                update.push_str(&remove.join(", "));
            }
            match request.update_expression(update).send().await {
                Ok(_) => Ok(true),
                Err(err) if condition_failed(&err) => Ok(false),
                Err(err) => Err(failed(err)),
            }
        }
        .boxed()
    }

    fn claim(&self, connection_id: String) -> BoxFuture<'static, StoreResult<bool>> {
        let this = self.clone();
        async move {
            let claimed = this
                .client
                .update_item()
                .table_name(&this.table)
                .set_key(Some(id_key(connection_id)))
                .update_expression("SET opening = :yes")
                .condition_expression(
                    "attribute_exists(connectionId) AND attribute_not_exists(opening) AND attribute_not_exists(sent)",
                )
                .expression_attribute_values(":yes", AttributeValue::Bool(true))
                .send()
                .await;
            match claimed {
                Ok(_) => Ok(true),
                Err(err) if condition_failed(&err) => Ok(false),
                Err(err) => Err(failed(err)),
            }
        }
        .boxed()
    }

    fn touch(&self, connection_id: String, at_ms: u64) -> BoxFuture<'static, StoreResult<()>> {
        let this = self.clone();
        async move {
            let touched = this
                .client
                .update_item()
                .table_name(&this.table)
                .set_key(Some(id_key(connection_id)))
                .update_expression("SET lastActivity = :at")
                .condition_expression("attribute_exists(connectionId)")
                .expression_attribute_values(":at", n(at_ms))
                .send()
                .await;
            match touched {
                Ok(_) => Ok(()),
                // Gone meanwhile: nothing to note.
                Err(err) if condition_failed(&err) => Ok(()),
                Err(err) => Err(failed(err)),
            }
        }
        .boxed()
    }
}
