//! A connection to Redis (one server, or a cluster) shared by every limiter
//! built on it: concurrent commands are pipelined on one multiplexed
//! connection, which reconnects by itself. Each command is bounded by the
//! backend's timeout; a limiter decides what a failure means (`OnError`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, IntoConnectionInfo, ProtocolVersion, PushInfo, RedisError, Script, Value};
use tokio::sync::{mpsc, watch, OnceCell};

use super::runtime::runtime;

/// What a decision does when Redis cannot answer within the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Raise,
    Allow,
    Deny,
    Local,
}

impl OnError {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "raise" => Self::Raise,
            "allow" => Self::Allow,
            "deny" => Self::Deny,
            "local" => Self::Local,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raise => "raise",
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Local => "local",
        }
    }
}

/// Why a command got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer within the timeout, or no connection.
    Unreachable(String),
    /// Redis answered with an error.
    Server(String),
    /// The backend was closed.
    Closed,
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Self::Unreachable(why) => format!("Redis could not be reached: {why}"),
            Self::Server(why) => format!("Redis answered an error: {why}"),
            Self::Closed => "the Redis backend is closed".to_owned(),
        }
    }

    fn from_error(err: &RedisError) -> Self {
        if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
        {
            Self::Unreachable(err.to_string())
        } else {
            Self::Server(err.to_string())
        }
    }
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn invoke(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, RedisError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        match self.clone() {
            Self::Single(mut conn) => invocation.invoke_async(&mut conn).await,
            Self::Cluster(mut conn) => invocation.invoke_async(&mut conn).await,
        }
    }

    async fn ping(&self) -> Result<(), RedisError> {
        let cmd = redis::cmd("PING");
        match self.clone() {
            Self::Single(mut conn) => cmd.query_async::<()>(&mut conn).await,
            Self::Cluster(mut conn) => cmd.query_async::<()>(&mut conn).await,
        }
    }
}

/// Where the backend points, read from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `redis://host:port/db` (or `rediss://`, `unix://`).
    Single(String),
    /// `redis+cluster://host:port,host:port`: seed nodes of a cluster.
    Cluster(Vec<String>),
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("redis+cluster://") {
            let nodes: Vec<String> = rest
                .trim_end_matches('/')
                .split(',')
                .filter(|node| !node.is_empty())
                .map(|node| format!("redis://{node}"))
                .collect();
            if nodes.is_empty() {
                return Err(format!("url={url:?} names no cluster node"));
            }
            for node in &nodes {
                redis::parse_redis_url(node)
                    .ok_or_else(|| format!("url={url:?}: bad node {node:?}"))?;
            }
            return Ok(Self::Cluster(nodes));
        }
        Client::open(url).map_err(|err| format!("url={url:?} is not a Redis URL: {err}"))?;
        Ok(Self::Single(url.to_owned()))
    }

    /// The node that subscriptions go to: pub/sub messages reach every node
    /// of a cluster.
    fn first_node(&self) -> &str {
        match self {
            Self::Single(url) => url,
            Self::Cluster(nodes) => &nodes[0],
        }
    }
}

/// Listeners of one channel: told each time a message arrives.
type Listeners = HashMap<String, Vec<Arc<dyn Fn() + Send + Sync>>>;

struct Subscriber {
    conn: ConnectionManager,
    subscribed: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
}

pub struct Backend {
    target: Target,
    pub prefix: String,
    pub timeout: Duration,
    pub on_error: OnError,
    connection: OnceCell<Connection>,
    subscriber: OnceCell<Subscriber>,
    listeners: Arc<Mutex<Listeners>>,
    closed: watch::Sender<bool>,
    /// When the last failure was logged, and how many since.
    failures: Mutex<(Option<Instant>, u64)>,
    /// After Redis could not be reached, decisions fail at once until then,
    /// instead of each waiting out a connection attempt.
    down_until: Mutex<Option<Instant>>,
    /// Redis could not be reached at the last try.
    unreachable: AtomicBool,
    /// Redis answered again after it could not be reached, not told yet.
    reached_again: AtomicBool,
}

/// How long decisions fail at once after Redis could not be reached: the
/// next one after that tries again.
const RETRY_AFTER_DOWN: Duration = Duration::from_millis(500);

/// Failures are logged at most this often; the ones between are counted.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

impl Backend {
    pub fn new(target: Target, prefix: String, timeout: Duration, on_error: OnError) -> Arc<Self> {
        Arc::new(Self {
            target,
            prefix,
            timeout,
            on_error,
            connection: OnceCell::new(),
            subscriber: OnceCell::new(),
            listeners: Arc::new(Mutex::new(HashMap::new())),
            closed: watch::channel(false).0,
            failures: Mutex::new((None, 0)),
            down_until: Mutex::new(None),
            unreachable: AtomicBool::new(false),
            reached_again: AtomicBool::new(false),
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The connection, made on first use. Connecting is lazy and the
    /// manager reconnects by itself, so this fails only on a bad setting.
    async fn connection(&self) -> Result<&Connection, Failure> {
        self.connection
            .get_or_try_init(|| async {
                match &self.target {
                    Target::Single(url) => {
                        let mut info = url
                            .as_str()
                            .into_connection_info()
                            .map_err(|err| Failure::Server(err.to_string()))?;
                        let settings = info
                            .redis_settings()
                            .clone()
                            .set_protocol(ProtocolVersion::RESP3);
                        info = info.set_redis_settings(settings);
                        let client = Client::open(info).map_err(|err| Failure::from_error(&err))?;
                        let config = ConnectionManagerConfig::new()
                            .set_connection_timeout(Some(self.timeout))
                            .set_response_timeout(None)
                            .set_number_of_retries(1)
                            .set_max_delay(Duration::from_millis(500));
                        ConnectionManager::new_lazy_with_config(client, config)
                            .map(Connection::Single)
                            .map_err(|err| Failure::from_error(&err))
                    }
                    Target::Cluster(nodes) => {
                        let client = ClusterClient::builder(nodes.clone())
                            .connection_timeout(self.timeout)
                            .retries(2)
                            .build()
                            .map_err(|err| Failure::from_error(&err))?;
                        client
                            .get_async_connection()
                            .await
                            .map(Connection::Cluster)
                            .map_err(|err| Failure::from_error(&err))
                    }
                }
            })
            .await
    }

    /// Runs `script` with `keys` and `args`, within the timeout.
    pub async fn invoke(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, Failure> {
        self.bounded(async {
            let conn = self.connection().await?;
            conn.invoke(script, keys, args)
                .await
                .map_err(|err| Failure::from_error(&err))
        })
        .await
    }

    /// Runs `script` with no bound but the backend's life: for work that must
    /// happen once Redis is back (giving back a lease).
    pub async fn invoke_unbounded(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Value, Failure> {
        let conn = self.connection().await?;
        conn.invoke(script, keys, args)
            .await
            .map_err(|err| Failure::from_error(&err))
    }

    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        if self.is_closed() {
            return Err(Failure::Closed);
        }
        if let Some(until) = *self.down_until.lock() {
            if Instant::now() < until {
                return Err(Failure::Unreachable(
                    "it failed a moment ago; trying again shortly".to_owned(),
                ));
            }
        }
        let outcome = match tokio::time::timeout(self.timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Unreachable(format!(
                "no answer within the timeout of {} s",
                self.timeout.as_secs_f64()
            ))),
        };
        let mut down_until = self.down_until.lock();
        if let Err(Failure::Unreachable(_)) = &outcome {
            *down_until = Some(Instant::now() + RETRY_AFTER_DOWN);
            self.unreachable.store(true, Ordering::Relaxed);
        } else {
            *down_until = None;
            if self.unreachable.load(Ordering::Relaxed)
                && self.unreachable.swap(false, Ordering::Relaxed)
            {
                self.reached_again.store(true, Ordering::Relaxed);
            }
        }
        drop(down_until);
        outcome
    }

    /// One round trip, timed.
    pub async fn ping(&self) -> Result<Duration, Failure> {
        self.bounded(async {
            let conn = self.connection().await?;
            let start = Instant::now();
            conn.ping().await.map_err(|err| Failure::from_error(&err))?;
            Ok(start.elapsed())
        })
        .await
    }

    /// True once after Redis answered again following a time it could not
    /// be reached (for the log line that says so).
    pub fn take_reached_again(&self) -> bool {
        self.reached_again.load(Ordering::Relaxed)
            && self.reached_again.swap(false, Ordering::Relaxed)
    }

    /// Whether a failure should be logged now, and how many went unlogged
    /// before it: at most one line every `FAILURE_LOG_EVERY`.
    pub fn note_failure(&self) -> Option<u64> {
        let mut failures = self.failures.lock();
        let now = Instant::now();
        match failures.0 {
            Some(last) if now.duration_since(last) < FAILURE_LOG_EVERY => {
                failures.1 += 1;
                None
            }
            _ => {
                let suppressed = std::mem::take(&mut failures.1);
                failures.0 = Some(now);
                Some(suppressed)
            }
        }
    }

    /// Calls `listener` each time a message arrives on `channel`, and
    /// resolves once the subscription is in place.
    pub async fn subscribe(
        &self,
        channel: &str,
        listener: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<(), Failure> {
        self.listeners
            .lock()
            .entry(channel.to_owned())
            .or_default()
            .push(listener);
        self.bounded(async {
            let subscriber = self.subscriber().await?;
            let cell = subscriber
                .subscribed
                .lock()
                .entry(channel.to_owned())
                .or_default()
                .clone();
            cell.get_or_try_init(|| async {
                subscriber
                    .conn
                    .clone()
                    .subscribe(channel)
                    .await
                    .map_err(|err| Failure::from_error(&err))
            })
            .await
            .copied()
        })
        .await
    }

    async fn subscriber(&self) -> Result<&Subscriber, Failure> {
        self.subscriber
            .get_or_try_init(|| async {
                let mut info = self
                    .target
                    .first_node()
                    .into_connection_info()
                    .map_err(|err| Failure::Server(err.to_string()))?;
                let settings = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                info = info.set_redis_settings(settings);
                let client = Client::open(info).map_err(|err| Failure::from_error(&err))?;
                let (sender, receiver) = mpsc::unbounded_channel::<PushInfo>();
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_push_sender(sender)
                    .set_automatic_resubscription();
                let conn = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|err| Failure::from_error(&err))?;
                spawn_dispatcher(
                    receiver,
                    Arc::clone(&self.listeners),
                    self.closed.subscribe(),
                );
                Ok(Subscriber {
                    conn,
                    subscribed: Mutex::new(HashMap::new()),
                })
            })
            .await
    }

    /// Spawns `work` on the runtime; false if there is no runtime.
    pub fn spawn(work: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
        match runtime() {
            Some(rt) => {
                rt.spawn(work);
                true
            }
            None => false,
        }
    }
}

/// Tells the listeners of each message's channel, outside every lock.
fn spawn_dispatcher(
    mut receiver: mpsc::UnboundedReceiver<PushInfo>,
    listeners: Arc<Mutex<Listeners>>,
    mut closed: watch::Receiver<bool>,
) {
    Backend::spawn(async move {
        loop {
            let push = tokio::select! {
                push = receiver.recv() => push,
                _ = closed.wait_for(|closed| *closed) => None,
            };
            let Some(push) = push else { return };
            if push.kind != redis::PushKind::Message {
                continue;
            }
            let Some(Value::BulkString(channel)) = push.data.first() else {
                continue;
            };
            let channel = String::from_utf8_lossy(channel);
            let told = listeners
                .lock()
                .get(channel.as_ref())
                .cloned()
                .unwrap_or_default();
            for listener in told {
                listener();
            }
        }
    });
}

impl From<super::call::NoRuntime> for Failure {
    fn from(_: super::call::NoRuntime) -> Self {
        Self::Unreachable("the I/O runtime could not start".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_one_server_or_a_cluster() {
        assert_eq!(
            Target::parse("redis://127.0.0.1:6379/0"),
            Ok(Target::Single("redis://127.0.0.1:6379/0".to_owned()))
        );
        assert_eq!(
            Target::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001"),
            Ok(Target::Cluster(vec![
                "redis://127.0.0.1:7000".to_owned(),
                "redis://127.0.0.1:7001".to_owned()
            ]))
        );
        assert!(Target::parse("redis+cluster://").is_err());
        assert!(Target::parse("http://127.0.0.1").is_err());
    }

    #[test]
    fn on_error_modes_round_trip() {
        for mode in ["raise", "allow", "deny", "local"] {
            assert_eq!(OnError::parse(mode).map(OnError::as_str), Some(mode));
        }
        assert_eq!(OnError::parse("maybe"), None);
    }

    #[test]
    fn failures_are_logged_once_per_period() {
        let backend = Backend::new(
            Target::Single("redis://127.0.0.1:1/0".to_owned()),
            "p:".to_owned(),
            Duration::from_millis(10),
            OnError::Raise,
        );
        assert_eq!(backend.note_failure(), Some(0));
        assert_eq!(backend.note_failure(), None);
        assert_eq!(backend.note_failure(), None);
    }
}
