//! The backend quota (`--quota-backend-bytes`) as an operator meets it: writes past the quota
//! fail with etcd's NOSPACE error and raise the alarm; reads and deletes still work; after
//! compaction, defragmentation and `alarm disarm` writes succeed again.
//!
//! Target: oxcd by default, `OXCD_E2E_TARGET=etcd` for etcd 3.5.1 (validates the test).
//! Bounded: at most `MAX_PUTS` puts of `VALUE_BYTES` each.

use etcd_client::{AlarmAction, AlarmOptions, AlarmType, DeleteOptions, GetOptions};
use oxcd_e2e::client::{assert_grpc_err, bounded, connect};
use oxcd_e2e::server::{Kind, Member, MemberConfig};
use tonic::Code;

const QUOTA_BYTES: usize = 4 << 20;
const VALUE_BYTES: usize = 512 << 10;
const MAX_PUTS: usize = 64;

#[tokio::test(flavor = "multi_thread")]
async fn nospace_alarm_and_recovery() {
    let cfg =
        MemberConfig::new(Kind::from_env()).arg(format!("--quota-backend-bytes={QUOTA_BYTES}"));
    let member = tokio::task::spawn_blocking(move || Member::start_with(cfg)).await.expect("start");
    let mut c = connect(&member.client_url()).await;
    bounded("quota", async {
        // Incompressible values, so the quota is really reached on disk as in etcd.
        let mut rand = oxcd_e2e::rng::xorshift64(0x9e37_79b9_7f4a_7c15);
        let mut value = || -> Vec<u8> { (0..VALUE_BYTES).map(|_| rand() as u8).collect() };
        let mut written = 0;
        let err = loop {
            assert!(written < MAX_PUTS, "no NOSPACE after {MAX_PUTS} puts of {VALUE_BYTES} bytes");
            match c.put(format!("big/{written:03}"), value(), None).await {
                Ok(_) => written += 1,
                Err(e) => break e,
            }
            // The size is sampled in the background (etcd's is exact): give it a moment.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(written > 0, "the first put already failed: {err}");
        assert_grpc_err::<()>(
            Err(err),
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        );

        let alarms = c.alarm(AlarmAction::Get, AlarmType::None, None).await.expect("alarm list");
        assert!(
            alarms.alarms().iter().any(|a| a.alarm() == AlarmType::Nospace),
            "NOSPACE alarm raised"
        );
        // Still refused while the alarm is active, even a small put.
        assert_grpc_err(
            c.put("small", "v", None).await,
            Code::ResourceExhausted,
            "database space exceeded",
        );
        // Reads and deletes still work.
        let got = c.get("big/", Some(GetOptions::new().with_prefix().with_count_only())).await;
        assert_eq!(got.expect("range under NOSPACE").count(), written as i64);
        let del = c.delete("big/", Some(DeleteOptions::new().with_prefix())).await;
        let rev = del.expect("delete under NOSPACE").header().expect("header").revision();

        // The operator's way out: compact, defragment, disarm.
        c.compact(rev, None).await.expect("compact");
        c.defragment().await.expect("defragment");
        // `etcdctl alarm disarm`: deactivate every active alarm, member by member.
        for a in alarms.alarms() {
            let mut member = AlarmOptions::new();
            member.with_member(a.member_id());
            c.alarm(AlarmAction::Deactivate, a.alarm(), Some(member)).await.expect("alarm disarm");
        }
        let alarms = c.alarm(AlarmAction::Get, AlarmType::None, None).await.expect("alarm list");
        assert!(alarms.alarms().is_empty(), "{} alarm(s) left after disarm", alarms.alarms().len());
        c.put("small", "v", None).await.expect("put after recovery");
    })
    .await;
}
