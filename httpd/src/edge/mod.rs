//! What only an edge node adds to the request path (an origin has none of it).
//!
//! Before a viewer's request is served from this node's windows: the first viewer of a live
//! stream waits for its Redis replica to open ([`replica::Demand`]), and what this node does not
//! hold (a live stream it has no window for, archives it cannot read) is fetched from the
//! origins through the caching, coalescing [`upstream`].

pub mod upstream;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderMap, Response};
use packager::Windows;
use replica::Demand;

use crate::body::Body;
use crate::response::json;
use crate::route::Route;
use upstream::Upstream;

/// How long the first viewer of a stream waits for its replica to open.
const REPLICA_WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Edge {
    pub upstream: Option<Upstream>,
    pub demand: Option<Demand>,
}

impl Edge {
    /// Readies this node for a viewer's `route`; the origins' answer when this node does not
    /// hold what it asks for. `has_archive`: this node reads archives itself.
    #[allow(clippy::too_many_arguments)] // each is one fact of this request or node
    pub async fn before_local(
        &self,
        route: &Route<'_>,
        path_and_query: &str,
        headers: &HeaderMap,
        viewer: upstream::Viewer<'_>,
        windows: &Windows,
        has_archive: bool,
        tls: bool,
    ) -> Option<Response<Body>> {
        if let (Some(d), Some(name)) = (&self.demand, route.live_stream()) {
            // The first viewer of a stream at this edge waits for its replica to open.
            if d.ask(name) {
                d.wait_open(windows, name, REPLICA_WAIT).await;
            }
        }
        let up = self.upstream.as_ref()?;
        let local = match (route.live_stream(), route) {
            (Some(name), _) => windows.get(name).is_some(),
            (None, Route::Vod(_) | Route::VodList) => has_archive,
            _ => true,
        };
        if local {
            return None;
        }
        Some(up.get(path_and_query, headers, viewer, tls).await)
    }

    /// `GET /api/v1/edge`: what the upstream cache did.
    pub fn stats(&self) -> Response<Body> {
        let Some(up) = &self.upstream else {
            return json(&serde_json::json!({ "upstream": null }));
        };
        let s = up.stats();
        let (bytes, entries) = up.cache_usage();
        json(&serde_json::json!({ "upstream": {
            "fetches": s.fetches.load(Ordering::Relaxed),
            "cache_hits": s.hits.load(Ordering::Relaxed),
            "coalesced": s.coalesced.load(Ordering::Relaxed),
            "failures": s.failures.load(Ordering::Relaxed),
            "cache_bytes": bytes,
            "cache_entries": entries,
        }}))
    }
}
