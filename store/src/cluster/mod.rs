//! What the member knows about the cluster beyond raft: members' etcd attributes (name,
//! client URLs) and active alarms. Applied through raft, stored in `Cf::Members`/`Cf::Meta`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use prost::Message;
use rocksdb::WriteBatch;
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::pb::etcdserverpb::alarm_request::AlarmAction;
use crate::pb::etcdserverpb::{AlarmMember, AlarmType};
use crate::pb::oxcdpb::MemberAttributes;
use crate::storage::schema::meta_keys;
use crate::storage::{Cf, Storage};

/// Members' attributes and the alarm list.
pub struct ClusterState {
    storage: Storage,
    members: Mutex<BTreeMap<u64, MemberAttributes>>,
    /// Members removed from the cluster; never re-admitted (etcd's `members_removed`).
    removed: Mutex<BTreeSet<u64>>,
    alarms: Mutex<Vec<AlarmMember>>,
}

impl ClusterState {
    /// Loads attributes and alarms from the database.
    pub fn open(storage: Storage) -> Result<ClusterState> {
        let state = ClusterState {
            storage,
            members: Mutex::new(BTreeMap::new()),
            removed: Mutex::new(BTreeSet::new()),
            alarms: Mutex::new(Vec::new()),
        };
        state.reload()?;
        Ok(state)
    }

    /// Re-reads everything from the database (after a snapshot was installed).
    pub fn reload(&self) -> Result<()> {
        let db = self.storage.db();
        let mut members = BTreeMap::new();
        for item in db.iterator_cf(self.storage.cf(Cf::Members), rocksdb::IteratorMode::Start) {
            let (_, value) = item?;
            let m = MemberAttributes::decode(value.as_ref())
                .map_err(|e| Error::internal("decode member", e))?;
            members.insert(m.id, m);
        }
        let alarms = match db.get_cf(self.storage.cf(Cf::Meta), meta_keys::ALARMS)? {
            Some(bytes) => {
                let pairs: Vec<(u64, i32)> = bincode::deserialize(&bytes)
                    .map_err(|e| Error::internal("decode alarms", e))?;
                pairs
                    .into_iter()
                    .map(|(member_id, alarm)| AlarmMember { member_id, alarm })
                    .collect()
            }
            None => Vec::new(),
        };
        let removed: BTreeSet<u64> =
            match db.get_cf(self.storage.cf(Cf::Meta), meta_keys::REMOVED_MEMBERS)? {
                Some(bytes) => bincode::deserialize(&bytes)
                    .map_err(|e| Error::internal("decode removed members", e))?,
                None => BTreeSet::new(),
            };
        *lock(&self.members) = members;
        *lock(&self.removed) = removed;
        *lock(&self.alarms) = alarms;
        Ok(())
    }

    /// Applies a member's self-published attributes (name, client URLs), keeping what
    /// `member add` recorded about its voting intent.
    pub fn publish_member(&self, batch: &mut WriteBatch, mut attrs: MemberAttributes) {
        let mut members = lock(&self.members);
        if let Some(existing) = members.get(&attrs.id) {
            attrs.pending_voter = existing.pending_voter;
        }
        self.store_member(batch, &attrs);
        members.insert(attrs.id, attrs);
    }

    /// Applies `member add`: the member exists, unnamed until it starts.
    pub fn add_member(
        &self,
        batch: &mut WriteBatch,
        id: u64,
        peer_urls: Vec<String>,
        pending_voter: bool,
    ) {
        let attrs = MemberAttributes {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            pending_voter,
        };
        self.store_member(batch, &attrs);
        lock(&self.members).insert(id, attrs);
    }

    /// Applies a promotion: the member votes now.
    pub fn promoted(&self, batch: &mut WriteBatch, id: u64) {
        let mut members = lock(&self.members);
        if let Some(m) = members.get_mut(&id) {
            m.pending_voter = false;
            let m = m.clone();
            self.store_member(batch, &m);
        }
    }

    fn store_member(&self, batch: &mut WriteBatch, attrs: &MemberAttributes) {
        batch.put_cf(self.storage.cf(Cf::Members), attrs.id.to_be_bytes(), attrs.encode_to_vec());
    }

    /// Applies a member's removal.
    pub fn remove_member(&self, batch: &mut WriteBatch, id: u64) -> Result<()> {
        batch.delete_cf(self.storage.cf(Cf::Members), id.to_be_bytes());
        lock(&self.members).remove(&id);
        let mut removed = lock(&self.removed);
        removed.insert(id);
        let bytes = bincode::serialize(&*removed)
            .map_err(|e| Error::internal("encode removed members", e))?;
        batch.put_cf(self.storage.cf(Cf::Meta), meta_keys::REMOVED_MEMBERS, bytes);
        Ok(())
    }

    /// Whether `id` was removed from the cluster (its raft messages are refused).
    pub fn is_removed(&self, id: u64) -> bool {
        lock(&self.removed).contains(&id)
    }

    /// One member's attributes.
    pub fn member(&self, id: u64) -> Option<MemberAttributes> {
        lock(&self.members).get(&id).cloned()
    }

    /// Every member's attributes, by id.
    pub fn members(&self) -> BTreeMap<u64, MemberAttributes> {
        lock(&self.members).clone()
    }

    /// Applies an alarm activation or deactivation; returns the alarms it changed.
    pub fn apply_alarm(
        &self,
        batch: &mut WriteBatch,
        action: AlarmAction,
        member_id: u64,
        alarm: AlarmType,
    ) -> Result<Vec<AlarmMember>> {
        let mut alarms = lock(&self.alarms);
        let entry = AlarmMember { member_id, alarm: alarm as i32 };
        let changed = match action {
            AlarmAction::Get => return Ok(alarms.clone()),
            AlarmAction::Activate => {
                if alarm == AlarmType::None {
                    return Ok(Vec::new());
                }
                if !alarms.contains(&entry) {
                    alarms.push(entry);
                }
                vec![entry]
            }
            AlarmAction::Deactivate => {
                let before = alarms.len();
                alarms.retain(|a| a != &entry);
                if alarms.len() == before {
                    Vec::new()
                } else {
                    vec![entry]
                }
            }
        };
        let pairs: Vec<(u64, i32)> = alarms.iter().map(|a| (a.member_id, a.alarm)).collect();
        let bytes = bincode::serialize(&pairs).map_err(|e| Error::internal("encode alarms", e))?;
        batch.put_cf(self.storage.cf(Cf::Meta), meta_keys::ALARMS, bytes);
        Ok(changed)
    }

    /// Active alarms.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        lock(&self.alarms).clone()
    }

    /// Whether the NOSPACE alarm is raised: writes that add data are refused until disarmed.
    pub fn no_space(&self) -> bool {
        lock(&self.alarms).iter().any(|a| a.alarm == AlarmType::Nospace as i32)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// etcd's member id: the first 8 bytes (big-endian) of SHA-1 over the sorted peer URLs, the
/// cluster token and, for members added later, the time of the add.
pub fn member_id(peer_urls: &[String], token: &str, added_at_unix: Option<i64>) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut bytes = urls.join("").into_bytes();
    bytes.extend_from_slice(token.as_bytes());
    if let Some(t) = added_at_unix {
        bytes.extend_from_slice(&t.to_be_bytes());
    }
    first_u64(&Sha1::digest(&bytes))
}

/// etcd's cluster id: SHA-1 over the sorted member ids, each 8 bytes big-endian.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    first_u64(&Sha1::digest(&bytes))
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut arr = [0u8; 8];
    arr.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(arr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_defaults() {
        // etcd's default single member: --initial-advertise-peer-urls http://localhost:2380,
        // token "etcd-cluster" → member 8e9e05c52164694d, cluster cdf818194e3a8c32.
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster", None);
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }
}
