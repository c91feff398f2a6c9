//! One writer per upload across origins: with Redis configured, a writer holds a lease on the
//! upload in Redis (`SET NX PX`), renewed while it writes and released when it stops, so an
//! origin behind the same load balancer answers a second writer `423` as this one does. A writer
//! whose process dies holds its upload no longer than [`TTL`]. A writer that finds its lease
//! gone (Redis out of reach for that long, or the key lost) is told ([`Lease::lost`]) and
//! stops, as another origin may have taken the upload. Without Redis every lease is granted:
//! one origin's own lock is the whole rule.

use std::time::Duration;

use replica::RedisClient;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A lease lapses this long after its holder last renewed it...
const TTL: Duration = Duration::from_secs(30);
/// ... which it does this often while it writes.
const RENEW: Duration = Duration::from_secs(10);

/// Renews a lease if the caller still holds it (`KEYS[1]`, its token `ARGV[1]`).
const RENEW_SCRIPT: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end"#;
/// Releases a lease if the caller still holds it.
const RELEASE_SCRIPT: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// Where leases are taken.
pub struct Leases {
    redis: Option<RedisClient>,
}

/// A writer's lease; released when dropped.
pub struct Lease {
    /// Dropping it tells the renewing task to release the lease.
    _release: Option<oneshot::Sender<()>>,
    lost: CancellationToken,
}

impl Lease {
    /// Cancelled when the lease is no longer this writer's.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }
}

impl Leases {
    pub fn new(redis: Option<RedisClient>) -> Leases {
        Leases { redis }
    }

    /// The lease on upload `id`, `None` while another writer holds it; an error when Redis does
    /// not answer.
    pub async fn take(&self, id: &str) -> redis::RedisResult<Option<Lease>> {
        let Some(client) = &self.redis else {
            return Ok(Some(Lease {
                _release: None,
                lost: CancellationToken::new(),
            }));
        };
        let key = format!("estuary:upload-writer:{id}");
        let token = super::random_id();
        let mut c = client.shared().await?;
        let taken: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(TTL.as_millis() as u64)
            .query_async(&mut c)
            .await;
        let taken = match taken {
            Ok(t) => t,
            Err(e) => {
                client.reset_shared().await;
                return Err(e);
            }
        };
        if taken.is_none() {
            return Ok(None);
        }
        let (release, released) = oneshot::channel();
        let lost = CancellationToken::new();
        tokio::spawn(hold(client.clone(), key, token, released, lost.clone()));
        Ok(Some(Lease {
            _release: Some(release),
            lost,
        }))
    }
}

/// Renews the lease until `released` fires (or its sender is dropped), then releases it;
/// cancels `lost` when the lease is found gone, or may have lapsed unrenewed.
async fn hold(
    client: RedisClient,
    key: String,
    token: String,
    mut released: oneshot::Receiver<()>,
    lost: CancellationToken,
) {
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = &mut released => break,
            _ = tokio::time::sleep(RENEW) => {}
        }
        match if_held(&client, RENEW_SCRIPT, &key, &token).await {
            Ok(1) => renewed = Instant::now(),
            Ok(_) => {
                tracing::warn!(key, "an upload writer's lease lapsed while it wrote (Redis was out of reach for 30 s?); the writer stops");
                lost.cancel();
                return;
            }
            Err(e) => {
                client.reset_shared().await;
                if renewed.elapsed() + RENEW >= TTL {
                    tracing::warn!(key, error = %e, "cannot renew an upload writer's lease, which lapses before the next try; the writer stops");
                    lost.cancel();
                    return;
                }
                tracing::warn!(key, error = %e, "cannot renew an upload writer's lease; trying again");
            }
        }
    }
    if let Err(e) = if_held(&client, RELEASE_SCRIPT, &key, &token).await {
        client.reset_shared().await;
        tracing::warn!(key, error = %e, "cannot release an upload writer's lease; it lapses in 30 s");
    }
}

/// Runs `script` (renew or release) on lease `key` for its holder `token`; the TTL goes along
/// as `ARGV[2]` (release does not read it). 1 when it was still held.
async fn if_held(
    client: &RedisClient,
    script: &str,
    key: &str,
    token: &str,
) -> redis::RedisResult<i64> {
    let mut c = client.shared().await?;
    redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg(key)
        .arg(token)
        .arg(TTL.as_millis() as u64)
        .query_async(&mut c)
        .await
}
