//! `put`: plain writes, the baseline that measures the replicated, fsynced write path.

use std::sync::Arc;

use etcd_client::KvClient;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::report::Samples;
use crate::workload::{self, KeyGen, Settings, Worker};

/// One client issuing puts of the shared value to generated keys.
struct PutWorker {
    kv: KvClient,
    keys: KeyGen,
    value: Arc<Vec<u8>>,
    rng: StdRng,
}

impl Worker for PutWorker {
    async fn call(&mut self, seq: u64) -> Result<&'static str, etcd_client::Error> {
        let key = self.keys.key(seq, &mut self.rng);
        self.kv.put(key, self.value.as_slice(), None).await?;
        Ok("put")
    }
}

/// Runs `settings.total` puts over `settings.clients` clients.
pub async fn run(settings: &Settings) -> anyhow::Result<Samples> {
    let conns = workload::connect(settings).await?;
    let value = Arc::new(workload::random_value(settings.val_size));
    let workers = (0..settings.clients)
        .map(|i| PutWorker {
            kv: workload::conn_for(&conns, i).kv_client(),
            keys: settings.keys,
            value: Arc::clone(&value),
            rng: StdRng::from_entropy(),
        })
        .collect();
    let bar = workload::progress_bar(settings.total, settings.progress, "put");
    let out = workload::run(settings.total, settings.rate, settings.timeout, &bar, workers).await;
    Ok(out.samples)
}
