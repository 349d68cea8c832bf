//! Splitting a large watch response, exactly as etcd's `sendFragments`.
//!
//! Only for watchers created with `fragment = true`: a response of at least `max_bytes` with
//! two or more events is cut into consecutive pieces, each as full as it can be while staying
//! under `max_bytes` (an event too large on its own travels alone). Every piece but the last
//! has `fragment = true`; clients join them back into one response.

use prost::encoding::encoded_len_varint;
use prost::Message;

use crate::pb::etcdserverpb::WatchResponse;

/// Encoded size of one `events` entry (field 11: a one-byte tag, the length, the message).
fn event_entry_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Splits `resp` into pieces below `max_bytes` if it is too large and has several events.
pub fn fragment(resp: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if resp.events.len() < 2 || resp.encoded_len() < max_bytes {
        return vec![resp];
    }
    let mut template = resp.clone();
    template.events = Vec::new();
    template.fragment = true;
    let base = template.encoded_len();
    let mut pieces = Vec::new();
    let mut current = template.clone();
    let mut size = base;
    for ev in resp.events {
        let entry = event_entry_len(ev.encoded_len());
        if !current.events.is_empty() && size + entry >= max_bytes {
            pieces.push(std::mem::replace(&mut current, template.clone()));
            size = base;
        }
        size += entry;
        current.events.push(ev);
    }
    current.fragment = false;
    pieces.push(current);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::etcdserverpb::ResponseHeader;
    use crate::pb::mvccpb::{Event, KeyValue};

    fn event(i: usize, value_len: usize) -> Event {
        Event {
            kv: Some(KeyValue {
                key: format!("k{i}").into_bytes(),
                value: vec![b'x'; value_len],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn response(events: Vec<Event>) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader { revision: 9, ..Default::default() }),
            watch_id: 3,
            events,
            ..Default::default()
        }
    }

    #[test]
    fn small_or_single_event_responses_are_untouched() {
        let r = response(vec![event(0, 10), event(1, 10)]);
        assert_eq!(fragment(r.clone(), 1 << 20), vec![r]);
        let big = response(vec![event(0, 5000)]);
        assert_eq!(fragment(big.clone(), 100), vec![big]);
    }

    #[test]
    fn splits_like_etcd() {
        // As measured against etcd 3.5.1: four 700 KiB events with a 1.5 MiB + 512 KiB limit
        // arrive as two fragments of two events each.
        let events: Vec<Event> = (0..4).map(|i| event(i, 700 * 1024)).collect();
        let pieces = fragment(response(events.clone()), 1536 * 1024 + 512 * 1024);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces.iter().map(|p| p.events.len()).collect::<Vec<_>>(), vec![2, 2]);
        assert_eq!(pieces.iter().map(|p| p.fragment).collect::<Vec<_>>(), vec![true, false]);
        assert!(pieces
            .iter()
            .all(|p| p.watch_id == 3 && p.header.as_ref().map(|h| h.revision) == Some(9)));
        let joined: Vec<Event> = pieces.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }

    #[test]
    fn every_piece_stays_under_the_limit_unless_alone() {
        let events: Vec<Event> = (0..50).map(|i| event(i, 100 + i * 37)).collect();
        let limit = 1000;
        let pieces = fragment(response(events.clone()), limit);
        assert!(pieces.len() > 1);
        for p in &pieces {
            let mut as_sent = p.clone();
            as_sent.fragment = true; // sizes are decided with the flag set, as etcd does
            assert!(p.events.len() == 1 || as_sent.encoded_len() < limit);
        }
        assert_eq!(pieces.into_iter().flat_map(|p| p.events).collect::<Vec<_>>(), events);
    }
}
