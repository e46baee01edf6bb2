//! Many nodes, one app: Redis between them, as a doorbell only.
//!
//! Every node publishes what its [`Relay`](crate::Relay) sends to one Redis channel
//! and applies what the others publish to its own connections. A stored event's
//! message carries each recipient's number, so a connection that sees a gap fetches
//! the rest from the store; and whenever this node may have missed messages (its
//! subscription dropped and came back, or its own publishes failed), every connection
//! involved checks the store for what it has not seen. Redis loses nothing that
//! matters: what is stored is caught up, and what is not stored (typing, live pushes)
//! was only ever best effort.
//!
//! Presence is kept in Redis per node: a hash of the users connected there (with how
//! many connections and since when), and a sorted set of live nodes scored by when
//! each expires. A node renews itself every [`HEARTBEAT`]; one that stops renewing is
//! reaped by any other after [`NODE_TTL`]: its users who are connected nowhere else go
//! offline. A user is online while any live node holds them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use relaywire_protocol::CloseCode;
use relaywire_protocol::http::UserStatus;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::bus::{Bus, BusMessage, apply};
use crate::config::{Cluster, ConnectionPolicy};
use crate::hub::{Hub, LocalPresence, Reach, Remote};
use crate::store::Store;
use crate::time::rfc3339;

/// How often a node renews its entry and reaps dead ones.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long after its last renewal a node counts as dead. A node that dies without a
/// goodbye has its users go offline within `NODE_TTL + HEARTBEAT` (8 s).
pub(crate) const NODE_TTL: Duration = Duration::from_secs(6);
/// How long one Redis command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the cluster could not be joined.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL: {0}")]
pub(crate) struct ClusterError(String);

fn redis_error(err: redis::RedisError) -> ClusterError {
    ClusterError(err.to_string())
}

/// What travels on the channel: the message and the node that sent it. A message
/// that does not read (a number out of range, say) is dropped: a gap it leaves is
/// caught up from the store.
#[derive(Debug, Deserialize)]
struct Envelope {
    node: String,
    message: BusMessage,
}

/// An [`Envelope`] as this node writes it, borrowing the message.
#[derive(Serialize)]
struct Outgoing<'a> {
    node: &'a str,
    message: &'a BusMessage,
}

/// The Redis names of one app (`REDIS_KEY_PREFIX`).
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn channel(&self) -> String {
        format!("{}:bus", self.prefix)
    }
    fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }
    fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
}

/// Presence scripts: each runs atomically in Redis, so two nodes connecting the same
/// user at once cannot both see them as new. `ARGV[1]` is the key prefix. A node is
/// live while its score, an expiry time, is above Redis's clock (`TIME`): only one
/// clock decides, so nodes whose clocks disagree still agree on who is live.
mod scripts {
    use std::sync::LazyLock;

    use redis::Script;

    /// Redis's time in milliseconds, as `now`; every script starts with it.
    const NOW: &str = "local t = redis.call('TIME')
        local now = t[1] * 1000 + math.floor(t[2] / 1000)";

    /// A script of [`NOW`], then `body`, hashed once for the process.
    fn compiled(body: &str) -> Script {
        Script::new(&format!("{NOW}\n{body}"))
    }

    /// Renews a node (`ARGV[2]`) for `ARGV[3]` ms; returns 1 when it was not live.
    const RENEW_LUA: &str = r"
        return redis.call('ZADD', ARGV[1]..':nodes', now + tonumber(ARGV[3]), ARGV[2])";

    /// Records a user on a node; returns how many other live nodes hold them.
    const CONNECT_LUA: &str = r"
        local others = 0
        for _, n in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1]..':nodes', '('..now, '+inf')) do
            if n ~= ARGV[2] and redis.call('HEXISTS', ARGV[1]..':node:'..n, ARGV[3]) == 1 then
                others = others + 1
            end
        end
        redis.call('HSET', ARGV[1]..':node:'..ARGV[2], ARGV[3], ARGV[4])
        return others";

    /// Removes a user from a node; returns how many other live nodes hold them.
    const DISCONNECT_LUA: &str = r"
        redis.call('HDEL', ARGV[1]..':node:'..ARGV[2], ARGV[3])
        local others = 0
        for _, n in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1]..':nodes', '('..now, '+inf')) do
            if redis.call('HEXISTS', ARGV[1]..':node:'..n, ARGV[3]) == 1 then
                others = others + 1
            end
        end
        return others";

    /// Every live node's users: node, user, value, node, user, value, ...
    const CONNECTED_LUA: &str = r"
        local out = {}
        for _, n in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1]..':nodes', '('..now, '+inf')) do
            local fields = redis.call('HGETALL', ARGV[1]..':node:'..n)
            for i = 1, #fields, 2 do
                out[#out + 1] = n
                out[#out + 1] = fields[i]
                out[#out + 1] = fields[i + 1]
            end
        end
        return out";

    /// The users `ARGV[2..]` on every live node that holds them: node, user, value,
    /// node, user, value, ...
    const HELD_LUA: &str = r"
        local out = {}
        for _, n in ipairs(redis.call('ZRANGEBYSCORE', ARGV[1]..':nodes', '('..now, '+inf')) do
            for i = 2, #ARGV do
                local value = redis.call('HGET', ARGV[1]..':node:'..n, ARGV[i])
                if value then
                    out[#out + 1] = n
                    out[#out + 1] = ARGV[i]
                    out[#out + 1] = value
                end
            end
        end
        return out";

    /// Removes the nodes that expired; returns their users that no live node holds.
    const REAP_LUA: &str = r"
        local dead = redis.call('ZRANGEBYSCORE', ARGV[1]..':nodes', '-inf', now)
        if #dead == 0 then return {} end
        local live = redis.call('ZRANGEBYSCORE', ARGV[1]..':nodes', '('..now, '+inf')
        local out = {}
        for _, d in ipairs(dead) do
            local users = redis.call('HKEYS', ARGV[1]..':node:'..d)
            redis.call('DEL', ARGV[1]..':node:'..d)
            redis.call('ZREM', ARGV[1]..':nodes', d)
            for _, u in ipairs(users) do
                local held = false
                for _, n in ipairs(live) do
                    if redis.call('HEXISTS', ARGV[1]..':node:'..n, u) == 1 then
                        held = true
                        break
                    end
                end
                if not held then out[#out + 1] = u end
            end
        end
        return out";

    pub(super) static RENEW: LazyLock<Script> = LazyLock::new(|| compiled(RENEW_LUA));
    pub(super) static CONNECT: LazyLock<Script> = LazyLock::new(|| compiled(CONNECT_LUA));
    pub(super) static DISCONNECT: LazyLock<Script> = LazyLock::new(|| compiled(DISCONNECT_LUA));
    pub(super) static CONNECTED: LazyLock<Script> = LazyLock::new(|| compiled(CONNECTED_LUA));
    pub(super) static HELD: LazyLock<Script> = LazyLock::new(|| compiled(HELD_LUA));
    pub(super) static REAP: LazyLock<Script> = LazyLock::new(|| compiled(REAP_LUA));
}

/// Resolves once the server starts shutting down (the guard `wait_for` returns is not
/// `Send`, so it is dropped here).
async fn stopping(shutting_down: &mut watch::Receiver<bool>) {
    let _ = shutting_down.wait_for(|stopping| *stopping).await;
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A presence hash value: connections and since when (ms), as `"3:1733000000000"`.
fn presence_value(connections: u32, since: SystemTime) -> String {
    format!("{connections}:{}", millis(since))
}

fn parse_value(value: &str) -> Option<(u32, u64)> {
    let (connections, since) = value.split_once(':')?;
    Some((connections.parse().ok()?, since.parse().ok()?))
}

/// Users' statuses from what the live nodes hold of them (node, user, value, ...):
/// connections summed, connected since the earliest.
fn statuses(held: Vec<String>) -> Vec<UserStatus> {
    let mut users: std::collections::BTreeMap<String, (u32, u64)> = Default::default();
    for chunk in held.chunks_exact(3) {
        let Some((connections, since)) = parse_value(&chunk[2]) else {
            continue;
        };
        let entry = users.entry(chunk[1].clone()).or_insert((0, u64::MAX));
        entry.0 = entry.0.saturating_add(connections);
        entry.1 = entry.1.min(since);
    }
    users
        .into_iter()
        .map(|(user_id, (connections, since))| UserStatus {
            user_id,
            online: connections > 0,
            connections,
            connected_since: Some(rfc3339(UNIX_EPOCH + Duration::from_millis(since))),
        })
        .collect()
}

/// A connection to Redis made before the server starts: the subscription is in place
/// before any connection is accepted, so nothing sent after start is missed.
pub(crate) struct Joining {
    client: redis::Client,
    commands: ConnectionManager,
    subscription: redis::aio::PubSub,
    keys: Keys,
    node: String,
}

impl Joining {
    /// Connects to Redis, subscribes, and enters this node in the live set.
    pub(crate) async fn connect(cluster: &Cluster) -> Result<Self, ClusterError> {
        let client = redis::Client::open(cluster.redis_url.as_str()).map_err(redis_error)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let commands = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(redis_error)?;
        let keys = Keys {
            prefix: cluster.key_prefix.clone(),
        };
        let mut subscription = client.get_async_pubsub().await.map_err(redis_error)?;
        subscription
            .subscribe(keys.channel())
            .await
            .map_err(redis_error)?;
        let node = uuid::Uuid::new_v4().simple().to_string();
        let joining = Self {
            client,
            commands,
            subscription,
            keys,
            node,
        };
        renew(&joining.commands, &joining.keys, &joining.node)
            .await
            .map_err(redis_error)?;
        tracing::info!(node = %joining.node, "joined the cluster");
        Ok(joining)
    }

    /// Starts the node's bus on `hub`: the publisher, the subscriber, presence and
    /// the heartbeat, until `shutting_down`.
    pub(crate) fn start(
        self,
        hub: Arc<Hub>,
        store: Arc<dyn Store>,
        policy: ConnectionPolicy,
        shutting_down: watch::Receiver<bool>,
    ) -> Arc<RedisBus> {
        let (outgoing, publish_queue) = mpsc::unbounded_channel();
        let (presence, presence_queue) = mpsc::unbounded_channel();
        let bus = Arc::new(RedisBus {
            hub: Arc::clone(&hub),
            node: self.node.clone(),
            keys: self.keys.clone(),
            commands: self.commands.clone(),
            outgoing,
            presence,
            policy,
            publish_failed: Arc::new(AtomicBool::new(false)),
            resync: Arc::new(AtomicBool::new(false)),
        });
        hub.set_remote(Arc::clone(&bus) as Arc<dyn Remote>);
        tokio::spawn(publish(Arc::clone(&bus), publish_queue));
        tokio::spawn(subscribe(
            Arc::clone(&bus),
            self.client,
            self.subscription,
            shutting_down.clone(),
        ));
        tokio::spawn(track_presence(Arc::clone(&bus), presence_queue));
        tokio::spawn(heartbeat(Arc::clone(&bus), store, shutting_down));
        bus
    }
}

/// Renews `node` in the live set for [`NODE_TTL`] by Redis's clock; 1 when it was
/// not in it (new, reaped, or Redis restarted).
async fn renew(commands: &ConnectionManager, keys: &Keys, node: &str) -> redis::RedisResult<i64> {
    let ttl = NODE_TTL.as_millis().to_string();
    scripts::RENEW
        .arg(&keys.prefix)
        .arg(node)
        .arg(ttl)
        .invoke_async(&mut commands.clone())
        .await
}

/// Something for the presence task, in order.
enum PresenceJob {
    Change(LocalPresence),
    /// Leave the cluster: this node's entry goes; answered when done.
    Leave(oneshot::Sender<()>),
}

/// The bus of a node in a cluster.
pub(crate) struct RedisBus {
    hub: Arc<Hub>,
    node: String,
    keys: Keys,
    commands: ConnectionManager,
    outgoing: mpsc::UnboundedSender<String>,
    presence: mpsc::UnboundedSender<PresenceJob>,
    policy: ConnectionPolicy,
    /// A publish failed: the other nodes may have missed events from here.
    publish_failed: Arc<AtomicBool>,
    /// Redis may have lost this node's presence (it restarted, or a write failed).
    resync: Arc<AtomicBool>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    fn publish_to_others(&self, message: &BusMessage) {
        let envelope = Outgoing {
            node: &self.node,
            message,
        };
        match serde_json::to_string(&envelope) {
            Ok(text) => {
                let _ = self.outgoing.send(text);
            }
            Err(err) => tracing::error!(error = %err, "encoding a bus message failed"),
        }
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        args: &[&str],
    ) -> redis::RedisResult<T> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.keys.prefix);
        for arg in args {
            invocation.arg(*arg);
        }
        invocation.invoke_async(&mut self.commands.clone()).await
    }

    /// Every user connected on any live node, by user id.
    pub(crate) async fn connected_users(&self) -> Result<Vec<UserStatus>, ClusterError> {
        let held = self
            .script(&scripts::CONNECTED, &[])
            .await
            .map_err(redis_error)?;
        Ok(statuses(held))
    }

    /// These users' statuses on every live node, by user id; those connected nowhere
    /// are left out.
    pub(crate) async fn statuses(&self, users: &[String]) -> Result<Vec<UserStatus>, ClusterError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let args: Vec<&str> = users.iter().map(String::as_str).collect();
        let held = self
            .script(&scripts::HELD, &args)
            .await
            .map_err(redis_error)?;
        Ok(statuses(held))
    }

    /// Which of these users are online anywhere.
    pub(crate) async fn online_among(&self, users: &[String]) -> Result<Vec<String>, ClusterError> {
        Ok(self
            .statuses(users)
            .await?
            .into_iter()
            .map(|status| status.user_id)
            .collect())
    }

    /// Waits until this node's presence changes are written, then takes the node out
    /// of the live set: its users are offline at once, not after [`NODE_TTL`].
    pub(crate) async fn leave(&self) {
        let (done, finished) = oneshot::channel();
        if self.presence.send(PresenceJob::Leave(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), finished).await;
        }
    }

    async fn on_change(&self, change: LocalPresence) -> redis::RedisResult<()> {
        match change {
            LocalPresence::Online {
                user,
                rooms,
                connections,
                since,
            } => {
                let value = presence_value(connections, since);
                let others: u32 = self
                    .script(&scripts::CONNECT, &[&self.node, &user, &value])
                    .await?;
                if others == 0 {
                    self.send(BusMessage::Presence {
                        user,
                        online: true,
                        rooms,
                        already: Vec::new(),
                    });
                } else if self.policy == ConnectionPolicy::Single {
                    // The newest connection wins, on whichever node it opened.
                    self.publish_to_others(&BusMessage::CloseUser {
                        user,
                        code: CloseCode::SessionReplaced,
                    });
                }
            }
            LocalPresence::Connections {
                user,
                connections,
                since,
            } => {
                redis::cmd("HSET")
                    .arg(self.keys.node(&self.node))
                    .arg(user)
                    .arg(presence_value(connections, since))
                    .exec_async(&mut self.commands.clone())
                    .await?;
            }
            LocalPresence::Offline { user, rooms } => {
                let others: u32 = self
                    .script(&scripts::DISCONNECT, &[&self.node, &user])
                    .await?;
                if others == 0 {
                    self.send(BusMessage::Presence {
                        user,
                        online: false,
                        rooms,
                        already: Vec::new(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Rewrites this node's users in Redis from the hub (after Redis lost them).
    async fn rewrite_presence(&self) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic().del(self.keys.node(&self.node));
        for change in self.hub.local_users() {
            if let LocalPresence::Online {
                user,
                connections,
                since,
                ..
            } = change
            {
                pipe.hset(
                    self.keys.node(&self.node),
                    user,
                    presence_value(connections, since),
                );
            }
        }
        pipe.exec_async(&mut self.commands.clone()).await
    }
}

impl Bus for RedisBus {
    fn send(&self, message: BusMessage) -> Reach {
        self.publish_to_others(&message);
        apply(&self.hub, message)
    }
}

impl Remote for RedisBus {
    fn forward(&self, message: BusMessage) {
        self.publish_to_others(&message);
    }

    fn presence(&self, change: LocalPresence) {
        let _ = self.presence.send(PresenceJob::Change(change));
    }
}

/// Publishes this node's messages in the order they were sent. One that cannot be
/// published is dropped and remembered: once Redis is back, the heartbeat tells every
/// node to catch up from the store.
async fn publish(bus: Arc<RedisBus>, mut queue: mpsc::UnboundedReceiver<String>) {
    let channel = bus.keys.channel();
    let mut commands = bus.commands.clone();
    while let Some(text) = queue.recv().await {
        let published = redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(text)
            .exec_async(&mut commands)
            .await;
        if let Err(err) = published
            && !bus.publish_failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(error = %err, "publishing to the other nodes failed; they catch up once Redis is back");
        }
    }
}

/// Applies the other nodes' messages here. When the subscription drops, it is made
/// again (every second until Redis answers), and then every connection here catches up
/// from the store and this node's presence is written again.
async fn subscribe(
    bus: Arc<RedisBus>,
    client: redis::Client,
    first: redis::aio::PubSub,
    mut shutting_down: watch::Receiver<bool>,
) {
    let mut subscription = Some(first);
    loop {
        let current = match subscription.take() {
            Some(current) => current,
            None => {
                let again = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(bus.keys.channel()).await?;
                    redis::RedisResult::Ok(pubsub)
                };
                match tokio::time::timeout(COMMAND_TIMEOUT, again).await {
                    Ok(Ok(pubsub)) => {
                        tracing::info!(
                            "subscribed to the other nodes again; catching up from the store"
                        );
                        bus.resync.store(true, Ordering::Relaxed);
                        bus.hub.catch_up_all();
                        pubsub
                    }
                    _ => {
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                            _ = stopping(&mut shutting_down) => return,
                        }
                    }
                }
            }
        };
        let (mut sink, mut stream) = current.split();
        let mut ping = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Ok(text) = message.get_payload::<String>() else { continue };
                    match serde_json::from_str::<Envelope>(&text) {
                        Ok(envelope) if envelope.node == bus.node => {}
                        Ok(envelope) => {
                            apply(&bus.hub, envelope.message);
                        }
                        Err(err) => tracing::warn!(error = %err, "a bus message could not be read"),
                    }
                }
                _ = ping.tick() => {
                    // A connection that went silent without closing is found here.
                    let alive = tokio::time::timeout(COMMAND_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(alive, Ok(Ok(_))) {
                        break;
                    }
                }
                _ = stopping(&mut shutting_down) => return,
            }
        }
        tracing::warn!("the subscription to the other nodes dropped; local delivery goes on");
    }
}

/// Writes this node's presence changes to Redis in order, and announces the users
/// who came online or went offline in the whole cluster.
async fn track_presence(bus: Arc<RedisBus>, mut queue: mpsc::UnboundedReceiver<PresenceJob>) {
    while let Some(job) = queue.recv().await {
        match job {
            PresenceJob::Change(change) => {
                if let Err(err) = bus.on_change(change).await {
                    tracing::warn!(error = %err, "recording presence failed; it is written again once Redis answers");
                    bus.resync.store(true, Ordering::Relaxed);
                }
            }
            PresenceJob::Leave(done) => {
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .del(bus.keys.node(&bus.node))
                    .zrem(bus.keys.nodes(), &bus.node);
                if let Err(err) = pipe.exec_async(&mut bus.commands.clone()).await {
                    tracing::warn!(error = %err, "leaving the cluster failed; the node expires instead");
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Renews this node, rewrites its presence when Redis may have lost it, asks every
/// node to catch up when its publishes failed, and reaps dead nodes: their users who
/// are connected nowhere else go offline.
async fn heartbeat(
    bus: Arc<RedisBus>,
    store: Arc<dyn Store>,
    mut shutting_down: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopping(&mut shutting_down) => return,
        }
        match renew(&bus.commands, &bus.keys, &bus.node).await {
            // Added anew: Redis restarted, or this node was reaped while it stalled.
            Ok(1) => bus.resync.store(true, Ordering::Relaxed),
            Ok(_) => {}
            Err(_) => {
                bus.resync.store(true, Ordering::Relaxed);
                continue;
            }
        }
        if bus.resync.swap(false, Ordering::Relaxed)
            && let Err(err) = bus.rewrite_presence().await
        {
            tracing::warn!(error = %err, "writing this node's presence failed");
            bus.resync.store(true, Ordering::Relaxed);
        }
        if bus.publish_failed.swap(false, Ordering::Relaxed) {
            tracing::info!("Redis answers again; asking every node to catch up from the store");
            bus.send(BusMessage::CatchUp);
        }
        let gone: Vec<String> = match bus.script(&scripts::REAP, &[]).await {
            Ok(gone) => gone,
            Err(_) => continue,
        };
        for user in gone {
            tracing::info!(user_id = %user, "a node expired; its user is offline");
            let rooms = store.user_rooms(user.clone()).await.unwrap_or_default();
            bus.send(BusMessage::Presence {
                user,
                online: false,
                rooms,
                already: Vec::new(),
            });
        }
    }
}
