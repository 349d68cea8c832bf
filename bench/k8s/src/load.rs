//! The object load, through kube-apiserver with kube-rs as any controller would send it:
//! concurrent creates, whole lists (paginated or not) and watch delivery of new objects.
//! ConfigMaps, because every cluster has them and their size is the caller's choice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::Api;

use crate::stats::Samples;

/// How long one watch event may take before the workload gives up (not a measurement bound:
/// a store that loses events must not hang the benchmark).
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

fn config_map(name: String, label: &str, payload: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([("bench".to_string(), label.to_string())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("payload".to_string(), payload.to_string())])),
        ..ConfigMap::default()
    }
}

/// Creates `n` ConfigMaps of `size` bytes, `concurrency` requests in flight; returns the wall
/// time and each create's latency.
pub async fn creates(
    api: &Api<ConfigMap>,
    n: usize,
    size: usize,
    concurrency: usize,
) -> Result<(Duration, Samples)> {
    let payload = "x".repeat(size);
    let start = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(0..n)
        .map(|i| {
            let cm = config_map(format!("cm-{i:06}"), "load", &payload);
            async move {
                let t = Instant::now();
                api.create(&PostParams::default(), &cm)
                    .await
                    .with_context(|| format!("create cm-{i:06}"))?;
                Ok::<_, anyhow::Error>(t.elapsed())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    let mut samples = Samples::default();
    latencies.into_iter().for_each(|d| samples.push(d));
    Ok((start.elapsed(), samples))
}

/// Lists every ConfigMap of the namespace `times` times, one after the other, in pages of
/// `limit` (None: one request), checking that all `expect` objects came back each time.
pub async fn lists(
    api: &Api<ConfigMap>,
    times: usize,
    limit: Option<u32>,
    expect: usize,
) -> Result<Samples> {
    let mut samples = Samples::default();
    for _ in 0..times {
        let t = Instant::now();
        let mut got = 0;
        let mut params = ListParams::default();
        if let Some(l) = limit {
            params = params.limit(l);
        }
        loop {
            let page = api.list(&params).await.context("list")?;
            got += page.items.len();
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
        samples.push(t.elapsed());
        if got < expect {
            bail!("a list returned {got} ConfigMaps, expected at least {expect}");
        }
    }
    Ok(samples)
}

/// Opens one watch on the namespace, then creates `n` ConfigMaps one at a time and measures,
/// for each, the time from sending the create to receiving its ADDED event.
pub async fn watch_delivery(api: &Api<ConfigMap>, n: usize) -> Result<Samples> {
    let rv = api
        .list(&ListParams::default().labels("bench=watch").limit(1))
        .await
        .context("list before the watch")?
        .metadata
        .resource_version
        .context("list without resourceVersion")?;
    let mut stream = api
        .watch(&WatchParams::default().labels("bench=watch").timeout(290), &rv)
        .await
        .context("watch")?
        .boxed();
    let mut samples = Samples::default();
    for i in 0..n {
        let name = format!("w-{i:06}");
        let t = Instant::now();
        api.create(&PostParams::default(), &config_map(name.clone(), "watch", "w"))
            .await
            .with_context(|| format!("create {name}"))?;
        loop {
            let ev = tokio::time::timeout(EVENT_TIMEOUT, stream.try_next())
                .await
                .with_context(|| format!("no event for {name} within {EVENT_TIMEOUT:?}"))?
                .context("watch stream")?
                .context("watch ended")?;
            match ev {
                WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some(&name) => break,
                WatchEvent::Error(e) => bail!("watch error: {e:?}"),
                _ => {}
            }
        }
        samples.push(t.elapsed());
    }
    Ok(samples)
}
