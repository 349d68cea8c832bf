//! `txn-put` and `txn-mixed`: writes through the Txn RPC, alone or mixed
//! with range reads at a given read/write ratio.

use std::sync::Arc;

use etcd_client::{KvClient, Txn, TxnOp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::range::{RangeSpec, RangeWorker};
use crate::report::Samples;
use crate::workload::{self, KeyGen, Settings, Worker};

/// Builds transactions of `ops` unconditional puts.
#[derive(Clone)]
struct TxnPut {
    kv: KvClient,
    keys: KeyGen,
    ops: usize,
    value: Arc<Vec<u8>>,
}

impl TxnPut {
    /// Issues one transaction; keys of request `seq` are `seq*ops ..` when
    /// sequential so that no two operations of a run repeat a key early.
    async fn txn(&mut self, seq: u64, rng: &mut StdRng) -> Result<(), etcd_client::Error> {
        let ops: Vec<TxnOp> = (0..self.ops as u64)
            .map(|i| {
                let key = self.keys.key(seq * self.ops as u64 + i, rng);
                TxnOp::put(key, self.value.as_slice(), None)
            })
            .collect();
        self.kv.txn(Txn::new().and_then(ops)).await?;
        Ok(())
    }
}

/// One `txn-put` client.
struct TxnPutWorker {
    txn: TxnPut,
    rng: StdRng,
}

impl Worker for TxnPutWorker {
    async fn call(&mut self, seq: u64) -> Result<&'static str, etcd_client::Error> {
        self.txn.txn(seq, &mut self.rng).await?;
        Ok("txn-put")
    }
}

/// Runs `settings.total` transactions of `ops` puts each.
pub async fn run_put(settings: &Settings, ops: usize) -> anyhow::Result<Samples> {
    anyhow::ensure!(ops >= 1, "--txn-ops must be at least 1");
    let conns = workload::connect(settings).await?;
    let value = Arc::new(workload::random_value(settings.val_size));
    let workers = (0..settings.clients)
        .map(|i| TxnPutWorker {
            txn: TxnPut {
                kv: workload::conn_for(&conns, i).kv_client(),
                keys: settings.keys,
                ops,
                value: Arc::clone(&value),
            },
            rng: StdRng::from_entropy(),
        })
        .collect();
    let bar = workload::progress_bar(settings.total, settings.progress, "txn-put");
    let out = workload::run(settings.total, settings.rate, settings.timeout, &bar, workers).await;
    Ok(out.samples)
}

/// One `txn-mixed` client: each request is a read with probability
/// `rw_ratio / (rw_ratio + 1)`, otherwise a one-put transaction.
struct MixedWorker {
    reads: RangeWorker,
    writes: TxnPut,
    read_probability: f64,
    rng: StdRng,
}

impl Worker for MixedWorker {
    async fn call(&mut self, seq: u64) -> Result<&'static str, etcd_client::Error> {
        if self.rng.gen_bool(self.read_probability) {
            self.reads.range(seq).await?;
            Ok("range")
        } else {
            self.writes.txn(seq, &mut self.rng).await?;
            Ok("txn-put")
        }
    }
}

/// The chance that a `txn-mixed` request is a read, for a read/write ratio.
pub fn read_probability(rw_ratio: f64) -> f64 {
    (rw_ratio / (rw_ratio + 1.0)).clamp(0.0, 1.0)
}

/// Runs `settings.total` requests mixing ranges and transactional puts.
pub async fn run_mixed(
    settings: &Settings,
    rw_ratio: f64,
    reads: RangeSpec,
) -> anyhow::Result<Samples> {
    anyhow::ensure!(
        rw_ratio.is_finite() && rw_ratio >= 0.0,
        "--rw-ratio must be a non-negative number"
    );
    let conns = workload::connect(settings).await?;
    let value = Arc::new(workload::random_value(settings.val_size));
    let workers = (0..settings.clients)
        .map(|i| {
            let kv = workload::conn_for(&conns, i).kv_client();
            MixedWorker {
                reads: RangeWorker::new(kv.clone(), reads.clone(), settings.keys),
                writes: TxnPut { kv, keys: settings.keys, ops: 1, value: Arc::clone(&value) },
                read_probability: read_probability(rw_ratio),
                rng: StdRng::from_entropy(),
            }
        })
        .collect();
    let bar = workload::progress_bar(settings.total, settings.progress, "txn-mixed");
    let out = workload::run(settings.total, settings.rate, settings.timeout, &bar, workers).await;
    Ok(out.samples)
}

#[cfg(test)]
mod tests {
    use super::read_probability;

    #[test]
    fn ratio_to_probability() {
        assert_eq!(read_probability(1.0), 0.5);
        assert!((read_probability(9.0) - 0.9).abs() < 1e-12);
        assert_eq!(read_probability(0.0), 0.0);
    }
}
