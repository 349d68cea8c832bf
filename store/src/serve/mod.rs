//! Listeners: client URLs (gRPC and HTTP on one port, as etcd), peer URLs (the peer service
//! only) and metrics URLs. `run` owns the member's lifetime and its shutdown order.

pub mod access;
pub mod conn_limit;
pub mod h2_authority;
pub mod peer_service;
pub mod tls_listener;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::api::auth::AuthService;
use crate::api::cluster::ClusterService;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::config::Config;
use crate::member::handle::Member;
use crate::member::server::EtcdServer;
use crate::pb::etcdserverpb::auth_server::AuthServer;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::etcdserverpb::watch_server::WatchServer;
use crate::pb::oxcdpb::raft_peer_server::RaftPeerServer;
use crate::pb::v3electionpb::election_server::ElectionServer;
use crate::pb::v3lockpb::lock_server::LockServer;
use crate::serve::peer_service::PeerService;
use crate::serve::tls_listener::{Peer, TlsListener};

/// gRPC overhead etcd allows on top of `--max-request-bytes`.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Starts a member and serves it until `shutdown` resolves; then stops accepting, stops the
/// background roles and raft, and syncs the WAL.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg)?;
    crate::metrics::init(&config.metrics);
    for (flag, value) in config.accepted.ignored() {
        tracing::warn!(
            flag,
            value,
            "etcd flag accepted for compatibility; it has no effect in oxcd"
        );
    }
    let client_urls = resolve_all(&config.listen_client_urls, "--listen-client-urls")?;
    let peer_urls = resolve_all(&config.listen_peer_urls, "--listen-peer-urls")?;
    let metrics_addrs = resolve_all(&config.listen_metrics_urls, "--listen-metrics-urls")?;
    let client_addrs: Vec<SocketAddr> = client_urls.iter().map(|(a, _)| *a).collect();
    let peer_addrs: Vec<SocketAddr> = peer_urls.iter().map(|(a, _)| *a).collect();
    // https metrics URLs serve with the client side's certificate, as etcd's do.
    let client_side_urls: Vec<(SocketAddr, bool)> =
        client_urls.iter().chain(&metrics_addrs).copied().collect();
    let tls = listener_tls(&config, &client_side_urls, &peer_urls)?;
    // Bind before starting raft so a taken port fails fast with a clear message.
    let mut client_listeners = Vec::new();
    for (addr, https) in &client_urls {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on client address {addr}"))?;
        client_listeners.push((listener, https.then(|| tls.client.clone()).flatten()));
    }
    let mut peer_listeners = Vec::new();
    for (addr, https) in &peer_urls {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on peer address {addr}"))?;
        peer_listeners.push((listener, https.then(|| tls.peer.clone()).flatten()));
    }
    let mut metrics_listeners = Vec::new();
    for (addr, https) in &metrics_addrs {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on metrics address {addr}"))?;
        metrics_listeners.push((listener, https.then(|| tls.client.clone()).flatten()));
    }

    let server = EtcdServer::start(config.clone()).await?;
    crate::metrics::identify(server.member_id(), config.quota_bytes());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut roles = server.spawn_background(stop_rx.clone());
    let (v2_server, v2_stop) = (Member::new(server.clone()), stop_rx.clone());
    roles.spawn(async move {
        crate::v2_api::expiry::run(v2_server, v2_stop).await;
        "v2 ttl expiry"
    });

    let max_recv = config.max_request_bytes + GRPC_OVERHEAD_BYTES;
    // The client-facing edge sees the member only through its narrow interface.
    let member = Member::new(server.clone());
    let routes = Routes::new(
        KvServer::new(KvService::new(member.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        WatchServer::new(WatchService::new(member.clone())).max_decoding_message_size(max_recv),
    )
    .add_service(
        LeaseServer::new(LeaseService::new(member.clone())).max_decoding_message_size(max_recv),
    )
    .add_service(
        MaintenanceServer::new(MaintenanceService::new(member.clone()))
            .max_decoding_message_size(max_recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        ClusterServer::new(ClusterService::new(member.clone())).max_decoding_message_size(max_recv),
    )
    .add_service(AuthServer::new(AuthService::new(member.clone())))
    .add_service(LockServer::new(LockService::new(member.clone())))
    .add_service(ElectionServer::new(ElectionService::new(member.clone())));
    let mut http_routes =
        crate::http::router(member.clone()).merge(crate::v2_api::admin::router(member.clone()));
    if config.enable_pprof {
        http_routes = http_routes.merge(crate::pprof::router());
    }
    if config.enable_v2 {
        http_routes = http_routes.merge(crate::v2_api::http::router(member.clone()));
    } else {
        http_routes = http_routes.merge(crate::v2_api::http::disabled_router());
    }
    let grpc_router = routes.into_axum_router();
    // etcd's JSON gateway: a gRPC client of these same services, in process.
    let gateway = crate::api::gateway::router(
        grpc_router.clone().layer(axum::middleware::from_fn(crate::metrics::count_grpc)),
    );
    let client_router = grpc_router
        .merge(http_routes)
        .merge(gateway)
        .layer(axum::middleware::from_fn(crate::http::not_found_for_plain_http))
        .layer(axum::middleware::from_fn(crate::metrics::count_grpc))
        .layer(axum::middleware::from_fn(tls_listener::client_identity));

    let mut tasks = tokio::task::JoinSet::new();
    let policy = std::sync::Arc::new(access::AccessPolicy::from_config(&config));
    for (listener, tls) in client_listeners {
        let access = access::ListenerAccess {
            policy: policy.clone(),
            tls: tls.is_some(),
            member: member.clone(),
        };
        let router = client_router
            .clone()
            .layer(axum::middleware::from_fn_with_state(access, access::check));
        let stop = wait_stop(stop_rx.clone());
        let stopped_early = wait_stop(stop_rx.clone());
        let server = server.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = server.ready() => {}
                _ = stopped_early => return Ok(()),
            }
            let max = conn_limit::MAX_CLIENT_CONNECTIONS;
            if let Some(tls) = tls {
                let listener = TlsListener::new(listener, tls)?;
                let listener = conn_limit::LimitedListener::new(listener, max);
                let router = router.into_make_service_with_connect_info::<Peer>();
                return axum::serve(listener, router).with_graceful_shutdown(stop).await;
            }
            let listener = conn_limit::LimitedListener::new(
                crate::serve::h2_authority::FixingListener::new(listener),
                max,
            );
            axum::serve(listener, router).with_graceful_shutdown(stop).await
        });
    }
    for (listener, tls) in metrics_listeners {
        let router = crate::http::router(member.clone());
        let stop = wait_stop(stop_rx.clone());
        if let Some(tls) = tls {
            let listener = TlsListener::new(listener, tls)?;
            tasks.spawn(
                async move { axum::serve(listener, router).with_graceful_shutdown(stop).await },
            );
            continue;
        }
        let listener = listener.tap_io(set_nodelay);
        tasks
            .spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stop).await });
    }
    for (listener, tls) in peer_listeners {
        let svc = RaftPeerServer::new(PeerService::new(server.clone()))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let router = Routes::new(svc).into_axum_router();
        let stop = wait_stop(stop_rx.clone());
        if let Some(tls) = tls {
            let listener = TlsListener::new(listener, tls)?;
            tasks.spawn(
                async move { axum::serve(listener, router).with_graceful_shutdown(stop).await },
            );
            continue;
        }
        let listener = listener.tap_io(set_nodelay);
        tasks
            .spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stop).await });
    }
    tracing::info!(
        name = server.name(),
        member_id = %format!("{:x}", server.member_id()),
        cluster_id = %format!("{:x}", server.headers().cluster_id()),
        client = ?client_addrs,
        peer = ?peer_addrs,
        "serving"
    );

    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            _ = &mut shutdown => {
                tracing::info!("shutting down");
                // etcd's `Stop`: a leader hands its leadership over first, while it still
                // serves, so the other members' clients see a pause instead of errors.
                if let Err(e) = crate::member::membership::hand_over_on_stop(&server).await {
                    tracing::warn!(error = %e, "leadership hand-over at stop failed");
                }
                break Ok(());
            }
            reason = server.raft_failed() => {
                tracing::error!(%reason, "raft stopped on a fatal error; the member exits");
                break Err(anyhow::anyhow!("raft stopped on a fatal error: {reason}"));
            }
            reason = server.batcher_failed() => {
                tracing::error!(%reason, "the propose batcher failed; the member exits");
                break Err(anyhow::anyhow!("the propose batcher failed: {reason}"));
            }
            _ = server.removed() => {
                tracing::warn!("removed from the cluster");
                break Ok(());
            }
            Some(res) = tasks.join_next() => {
                tracing::error!(result = ?res, "a listener stopped");
                break Err(anyhow::anyhow!("a listener stopped: {res:?}"));
            }
            Some(res) = roles.join_next() => match res {
                // Roles that finish their job (publishing attributes, an auto-compactor that
                // is off) end normally.
                Ok(role) => tracing::debug!(role, "background role finished"),
                Err(e) => {
                    tracing::error!(error = %e, "a background role failed; stopping the member");
                    break Err(anyhow::anyhow!("a background role failed: {e}"));
                }
            },
        }
    };
    // Stop accepting and end the streams that clients keep open, then give the rest of the
    // in-flight requests a bounded time before stopping raft and syncing the WAL.
    let _ = stop_tx.send(true);
    server.stop_streams();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
        while roles.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(timeout = ?DRAIN_TIMEOUT, "requests still in flight at shutdown; closing them");
        tasks.abort_all();
        roles.abort_all();
    }
    server.shutdown().await;
    outcome
}

/// How long a graceful shutdown waits for in-flight requests once streams were ended.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Peer and metrics connections carry small request/response messages: no Nagle delay.
fn set_nodelay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY");
    }
}

async fn wait_stop(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// The rustls configurations of the https client and peer listeners (`None`: no https URL on
/// that side). Also installs what this member dials other members' https URLs with.
struct ListenerTls {
    client: Option<Arc<rustls::ServerConfig>>,
    peer: Option<Arc<rustls::ServerConfig>>,
}

fn listener_tls(
    config: &Config,
    client_urls: &[(SocketAddr, bool)],
    peer_urls: &[(SocketAddr, bool)],
) -> anyhow::Result<ListenerTls> {
    let data_dir = config.data_dir();
    let client_https = client_urls.iter().any(|(_, https)| *https);
    let peer_https = peer_urls.iter().any(|(_, https)| *https);
    let hosts = |urls: &[(SocketAddr, bool)]| -> Vec<String> {
        let mut hosts = vec!["localhost".to_string()];
        hosts.extend(urls.iter().map(|(a, _)| a.ip().to_string()));
        hosts.dedup();
        hosts
    };
    let flags = &config.tls;
    let client = flags.resolve_client(&data_dir, &hosts(client_urls))?;
    let peer = flags.resolve_peer(&data_dir, &hosts(peer_urls))?;
    crate::tls::client::install(&peer, &client)?;
    let side_config = |side: &crate::tls::Side, https: bool, what: &str, flags: &str| match (
        https,
        side.has_cert(),
    ) {
        (false, has_cert) => {
            if has_cert {
                tracing::warn!("{what} URLs are http while {flags} are given; ignoring them for {what} traffic");
            }
            Ok(None)
        }
        (true, false) => {
            bail!("TLS key/cert ({flags}) must be provided for {what} URLs with HTTPS scheme")
        }
        (true, true) => Ok(Some(crate::tls::server::config(side)?)),
    };
    Ok(ListenerTls {
        client: side_config(&client, client_https, "client", "--cert-file, --key-file")?,
        peer: side_config(&peer, peer_https, "peer", "--peer-cert-file, --peer-key-file")?,
    })
}

/// Turns a comma-separated URL flag into socket addresses (`localhost` → 127.0.0.1), each
/// with whether it is https.
fn resolve_all(flag: &str, name: &str) -> anyhow::Result<Vec<(SocketAddr, bool)>> {
    let mut out = Vec::new();
    for url in Config::urls(flag) {
        let (rest, https) = match url.split_once("://") {
            Some(("http", rest)) => (rest, false),
            Some(("https", rest)) => (rest, true),
            Some((scheme, _)) => bail!("{name}: unsupported scheme {scheme:?} in {url}"),
            None => bail!("{name}: {url:?} is not a URL (expected http://host:port)"),
        };
        let hostport = rest.trim_end_matches('/');
        let (host, port) =
            hostport.rsplit_once(':').with_context(|| format!("{name}: {url:?} has no port"))?;
        let port: u16 = port.parse().with_context(|| format!("{name}: bad port in {url:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = match host {
            "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
            h => h
                .parse()
                .with_context(|| format!("{name}: {h:?} is not an IP address or localhost"))?,
        };
        out.push((SocketAddr::new(ip, port), https));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_etcd_urls() {
        let addrs = resolve_all("http://localhost:2379,https://0.0.0.0:4001", "x").unwrap();
        assert_eq!(addrs[0], ("127.0.0.1:2379".parse().unwrap(), false));
        assert_eq!(addrs[1], ("0.0.0.0:4001".parse().unwrap(), true));
        assert!(resolve_all("localhost:2379", "x").is_err());
    }
}
