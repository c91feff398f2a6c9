//! The Redis client: one server, or a Redis Cluster through seed nodes, over TCP (`redis://`)
//! or TLS (`rediss://`, trusting the system's roots or a CA of the operator's); a password
//! from the URL or given apart from it (so it can stay out of files that get shown); connections
//! with timeouts (a Redis that stops answering is noticed, not waited on for ever), and one
//! shared connection for short commands.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A Redis that does not accept a connection in this long is treated as down...
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// ... and one that does not answer a command in this long (an `XREAD BLOCK` waits at most a
/// second; a half-open connection would otherwise hang a replica for good).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Redis is: one server, or a Redis Cluster reached through seed nodes.
#[derive(Clone)]
pub struct RedisClient {
    kind: Kind,
    /// A connection shared by short commands (resume positions).
    shared: Arc<tokio::sync::Mutex<Option<Conn>>>,
    url: String,
}

#[derive(Clone)]
enum Kind {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

/// A connection to either.
#[derive(Clone)]
pub enum Conn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What a connection needs besides the URL.
#[derive(Clone, Debug, Default)]
pub struct RedisOptions {
    /// `AUTH` password (instead of one in the URL).
    pub password: Option<String>,
    /// PEM CA certificates to trust for `rediss://` instead of the system's.
    pub ca: Option<Vec<u8>>,
}

impl RedisClient {
    /// `url`: `redis://host:port` or `rediss://host:port`; with `cluster`, one or more seed
    /// nodes separated by commas.
    pub fn open(url: &str, cluster: bool) -> redis::RedisResult<Self> {
        Self::open_with(url, cluster, RedisOptions::default())
    }

    pub fn open_with(url: &str, cluster: bool, opts: RedisOptions) -> redis::RedisResult<Self> {
        let certs = |ca: Vec<u8>| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        };
        let kind = if cluster {
            let seeds: Vec<&str> = url.split(',').map(str::trim).collect();
            let mut b = redis::cluster::ClusterClientBuilder::new(seeds)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(2);
            if let Some(p) = opts.password {
                b = b.password(p);
            }
            if let Some(ca) = opts.ca {
                b = b.certs(certs(ca));
            }
            Kind::Cluster(b.build()?)
        } else {
            let mut info = redis::IntoConnectionInfo::into_connection_info(url)?;
            if opts.password.is_some() {
                info.redis.password = opts.password;
            }
            Kind::Single(match opts.ca {
                Some(ca) => redis::Client::build_with_tls(info, certs(ca))?,
                None => redis::Client::open(info)?,
            })
        };
        Ok(RedisClient {
            kind,
            shared: Arc::default(),
            url: url.to_string(),
        })
    }

    /// The URL as logs may show it: no password.
    pub fn url(&self) -> String {
        redacted(&self.url)
    }

    /// A new connection (a blocking `XREAD` needs its own).
    pub async fn connect(&self) -> redis::RedisResult<Conn> {
        Ok(match &self.kind {
            Kind::Single(c) => Conn::Single(
                c.get_multiplexed_async_connection_with_config(
                    &redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(CONNECT_TIMEOUT)
                        .set_response_timeout(RESPONSE_TIMEOUT),
                )
                .await?,
            ),
            Kind::Cluster(c) => Conn::Cluster(c.get_async_connection().await?),
        })
    }

    /// The shared connection, made when first needed or after [`RedisClient::reset_shared`].
    pub async fn shared(&self) -> redis::RedisResult<Conn> {
        let mut s = self.shared.lock().await;
        if let Some(c) = &*s {
            return Ok(c.clone());
        }
        let c = self.connect().await?;
        *s = Some(c.clone());
        Ok(c)
    }

    /// Drops the shared connection after an error; the next use makes a new one.
    pub async fn reset_shared(&self) {
        *self.shared.lock().await = None;
    }

    /// A new connection, retried every half second until one is made; `None` on `cancel`.
    pub async fn connect_retrying(&self, cancel: &CancellationToken) -> Option<Conn> {
        loop {
            match self.connect().await {
                Ok(c) => return Some(c),
                Err(_) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
    }
}

/// `redis://user:secret@host:6379` → `redis://user:***@host:6379` (each of a cluster's seeds).
pub fn redacted(url: &str) -> String {
    url.split(',')
        .map(|u| {
            let u = u.trim();
            let Some((scheme, rest)) = u.split_once("://") else {
                return u.to_string();
            };
            match rest.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or("", |(user, _)| user);
                    format!("{scheme}://{user}:***@{host}")
                }
                None => u.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redacted("rediss://:hunter2@r:6380/0"),
            "rediss://:***@r:6380/0"
        );
        assert_eq!(
            redacted("redis://u:p@a:1, redis://u:p@b:2"),
            "redis://u:***@a:1,redis://u:***@b:2"
        );
    }
}
