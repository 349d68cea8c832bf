//! `range`: reads, either etcd-style (the same `key [end]` every time) or,
//! without a key, a random existing key from the key space per request, so
//! reads over a preloaded key space can be measured.

use etcd_client::{GetOptions, KvClient};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::report::Samples;
use crate::workload::{self, KeyGen, Settings, Worker};

/// Read consistency, as etcd's `--consistency` flag spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Consistency {
    /// Linearizable: goes through a quorum read (ReadIndex) on the leader.
    L,
    /// Serializable: answered from the member's local state.
    S,
}

impl Consistency {
    /// Request options for this consistency level.
    pub fn options(self) -> GetOptions {
        match self {
            Consistency::L => GetOptions::new(),
            Consistency::S => GetOptions::new().with_serializable(),
        }
    }
}

/// What to read.
#[derive(Debug, Clone)]
pub struct RangeSpec {
    /// Fixed key; `None` means a random key from the key space per request.
    pub key: Option<Vec<u8>>,
    /// Optional range end (exclusive) for a fixed key.
    pub end: Option<Vec<u8>>,
    /// Read consistency.
    pub consistency: Consistency,
    /// Maximum keys returned per request; 0 means no limit.
    pub limit: i64,
}

impl RangeSpec {
    /// Request options for this spec.
    fn options(&self) -> GetOptions {
        let mut opts = self.consistency.options();
        if let Some(end) = &self.end {
            opts = opts.with_range(end.clone());
        }
        if self.limit > 0 {
            opts = opts.with_limit(self.limit);
        }
        opts
    }
}

/// One client issuing ranges.
pub struct RangeWorker {
    kv: KvClient,
    spec: RangeSpec,
    keys: KeyGen,
    rng: StdRng,
}

impl RangeWorker {
    /// A worker reading through `kv`.
    pub fn new(kv: KvClient, spec: RangeSpec, keys: KeyGen) -> Self {
        RangeWorker { kv, spec, keys, rng: StdRng::from_entropy() }
    }

    /// Issues one range; shared with `txn-mixed`, whose reads are these ranges.
    pub async fn range(&mut self, seq: u64) -> Result<(), etcd_client::Error> {
        let key = match &self.spec.key {
            Some(k) => k.clone(),
            None => self.keys.key(seq, &mut self.rng),
        };
        self.kv.get(key, Some(self.spec.options())).await?;
        Ok(())
    }
}

impl Worker for RangeWorker {
    async fn call(&mut self, seq: u64) -> Result<&'static str, etcd_client::Error> {
        self.range(seq).await?;
        Ok("range")
    }
}

/// Runs `settings.total` ranges over `settings.clients` clients.
pub async fn run(settings: &Settings, spec: RangeSpec) -> anyhow::Result<Samples> {
    let conns = workload::connect(settings).await?;
    let workers = (0..settings.clients)
        .map(|i| {
            let kv = workload::conn_for(&conns, i).kv_client();
            RangeWorker::new(kv, spec.clone(), settings.keys)
        })
        .collect();
    let bar = workload::progress_bar(settings.total, settings.progress, "range");
    let out = workload::run(settings.total, settings.rate, settings.timeout, &bar, workers).await;
    Ok(out.samples)
}
