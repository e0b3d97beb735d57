//! The connection kinds: a single Redis or a Redis Cluster (detected at
//! start), for scripts (reconnecting by themselves: the redis crate's
//! `ConnectionManager` for a single Redis, the cluster client's own for a
//! Cluster) and for the subscription (a plain RESP3 connection whose pushes
//! go to a bounded queue; the link re-establishes it, since it must know
//! when events may have been missed).

use std::time::Duration;

use longhouse_core::shared::PublishMode;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionInfo, ProtocolVersion};

use super::pushes::PushSender;

/// Limits on one Redis exchange, so a dead server fails a call quickly.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where Redis is and what it is.
#[derive(Clone)]
pub struct Target {
    pub info: ConnectionInfo,
    pub client: Client,
}

/// What the configured node says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// A cluster node (`cluster_enabled:1`).
    pub cluster: bool,
    /// Sharded pub/sub (Redis 7) or classic.
    pub mode: PublishMode,
}

/// Asks the configured node what it is.
pub async fn probe(target: &Target) -> redis::RedisResult<Shape> {
    let mut conn = target
        .client
        .get_multiplexed_async_connection_with_config(&timeouts())
        .await?;
    let cluster: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut conn)
        .await?;
    let cluster = cluster.lines().any(|l| l.trim() == "cluster_enabled:1");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    let major = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse::<u32>().ok())
        .unwrap_or(0);
    // A cluster's shard channels keep a space's events on its own shard;
    // they need Redis 7 there too.
    let mode = if major >= 7 {
        PublishMode::Sharded
    } else {
        PublishMode::Classic
    };
    Ok(Shape { cluster, mode })
}

fn timeouts() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
}

/// The connection scripts run on; it reconnects by itself.
#[derive(Clone)]
pub enum ScriptConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ScriptConn {
    /// A script connection for `shape`. For a single Redis it connects
    /// lazily, on the first call, and again after any failure.
    pub async fn open(target: &Target, shape: Shape) -> redis::RedisResult<Self> {
        if shape.cluster {
            let client = cluster_client(target, None)?;
            return Ok(ScriptConn::Cluster(client.get_async_connection().await?));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        Ok(ScriptConn::Single(ConnectionManager::new_lazy_with_config(
            target.client.clone(),
            config,
        )?))
    }
}

impl redis::aio::ConnectionLike for ScriptConn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            ScriptConn::Single(c) => c.req_packed_command(cmd),
            ScriptConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            ScriptConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            ScriptConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            ScriptConn::Single(c) => c.get_db(),
            ScriptConn::Cluster(c) => c.get_db(),
        }
    }
}

fn cluster_client(
    target: &Target,
    pushes: Option<PushSender>,
) -> redis::RedisResult<ClusterClient> {
    let mut builder = ClusterClient::builder(vec![target.info.clone()])
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(2);
    if let Some(tx) = pushes {
        builder = builder.push_sender(tx);
    }
    builder.build()
}

/// The subscription connection: its pushes go to `pushes`.
pub enum SubConn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl SubConn {
    pub async fn open(
        target: &Target,
        shape: Shape,
        pushes: PushSender,
    ) -> redis::RedisResult<Self> {
        if shape.cluster {
            let client = cluster_client(target, Some(pushes))?;
            return Ok(SubConn::Cluster(client.get_async_connection().await?));
        }
        let config = timeouts().set_push_sender(pushes);
        Ok(SubConn::Single(
            target
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?,
        ))
    }

    /// Subscribes to one channel; returns once Redis confirmed it.
    pub async fn subscribe(&mut self, mode: PublishMode, channel: &str) -> redis::RedisResult<()> {
        match self {
            SubConn::Single(c) => {
                redis::cmd(mode.subscribe_command())
                    .arg(channel)
                    .exec_async(c)
                    .await
            }
            SubConn::Cluster(c) => c.ssubscribe(channel).await,
        }
    }

    pub async fn unsubscribe(
        &mut self,
        mode: PublishMode,
        channel: &str,
    ) -> redis::RedisResult<()> {
        match self {
            SubConn::Single(c) => {
                redis::cmd(mode.unsubscribe_command())
                    .arg(channel)
                    .exec_async(c)
                    .await
            }
            SubConn::Cluster(c) => c.sunsubscribe(channel).await,
        }
    }

    /// Whether the connection still answers.
    pub async fn ping(&mut self) -> redis::RedisResult<()> {
        let cmd = redis::cmd("PING");
        match self {
            SubConn::Single(c) => cmd.query_async::<redis::Value>(c).await.map(drop),
            SubConn::Cluster(c) => cmd.query_async::<redis::Value>(c).await.map(drop),
        }
    }
}
