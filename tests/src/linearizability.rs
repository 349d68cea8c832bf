//! A linearizability checker for histories of single-key registers, in the style of
//! Wing & Gong / Lowe's just-in-time linearization as Porcupine implements it.
//!
//! A history is a set of [`Op`]s, each with the time it was invoked and the time its
//! response came back. A write whose outcome is unknown (it timed out or failed in a way that
//! does not prove it had no effect) has no return time: it may take effect at any point
//! after its invocation, or never, which is the same as "at the very end".
//!
//! Keys are independent registers (P-compositionality): [`check`] checks each key's
//! sub-history on its own. The state of a register is `None` (key absent) or the id of the
//! value last written; writes must write unique values, so a read names the write it saw.
//!
//! The search memoizes (set of linearized operations, register state) pairs, which keeps it
//! polynomial for the bounded concurrency of a test, and gives up after a step budget rather
//! than running away on pathological input. Before searching, two reductions that cannot
//! change the verdict are made: failed reads are never recorded (they had no effect), and an
//! unknown-outcome write that no read observed is dropped (it can always be linearized last).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Wrote this (unique) value id.
    Write(u64),
    /// Read this value id, or `None` for "key absent".
    Read(Option<u64>),
}

/// One client operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Which client issued it (for reports only).
    pub client: usize,
    /// The register.
    pub key: String,
    /// What it did.
    pub kind: OpKind,
    /// Invocation time (ns since the history's epoch).
    pub invoke: u64,
    /// Return time (ns since the epoch); `None` when the outcome is unknown (infinite).
    pub ret: Option<u64>,
}

/// The verdict for a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every key's history is linearizable.
    Linearizable,
    /// Some key's history is not; the text describes it.
    NotLinearizable(String),
    /// The search hit its step budget on some key (no verdict).
    GaveUp(String),
}

impl Outcome {
    /// Whether the verdict is "linearizable".
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Outcome::Linearizable)
    }
}

/// Search steps allowed per key before giving up.
pub const STEP_BUDGET: u64 = 20_000_000;

/// Collects a history from concurrent clients (thread-safe; share it in an `Arc`).
pub struct Recorder {
    epoch: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// An empty history whose epoch is now.
    pub fn new() -> Recorder {
        Recorder { epoch: Instant::now(), ops: Mutex::new(Vec::new()) }
    }

    /// Now, in ns since the epoch; take it just before invoking an operation.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn push(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    /// A write acknowledged now, invoked at `invoke`.
    pub fn write_ok(&self, client: usize, key: &str, value: u64, invoke: u64) {
        let ret = Some(self.now());
        self.push(Op { client, key: key.into(), kind: OpKind::Write(value), invoke, ret });
    }

    /// A write that failed or timed out: it may or may not have taken effect.
    pub fn write_unknown(&self, client: usize, key: &str, value: u64, invoke: u64) {
        self.push(Op { client, key: key.into(), kind: OpKind::Write(value), invoke, ret: None });
    }

    /// A successful read that returned now, invoked at `invoke`.
    pub fn read_ok(&self, client: usize, key: &str, value: Option<u64>, invoke: u64) {
        let ret = Some(self.now());
        self.push(Op { client, key: key.into(), kind: OpKind::Read(value), invoke, ret });
    }

    /// The operations recorded so far.
    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Checks a multi-key history, key by key.
pub fn check(ops: &[Op]) -> Outcome {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(op.key.as_str()).or_default().push(op.clone());
    }
    for (key, ops) in by_key {
        match check_register(&ops, STEP_BUDGET) {
            Outcome::Linearizable => {}
            Outcome::NotLinearizable(why) => {
                return Outcome::NotLinearizable(format!("key {key:?}: {why}"))
            }
            Outcome::GaveUp(why) => return Outcome::GaveUp(format!("key {key:?}: {why}")),
        }
    }
    Outcome::Linearizable
}

/// A node of the doubly linked event list: index 0 is the head sentinel.
#[derive(Clone, Copy)]
struct Node {
    prev: usize,
    next: usize,
    /// The operation (index into the op list) and whether this is its call event.
    op: usize,
    call: bool,
    /// For a call event, the node of its return event.
    matching: usize,
}

/// Checks the history of one register (all ops are taken to be on the same key), allowing
/// at most `budget` search steps.
pub fn check_register(ops: &[Op], budget: u64) -> Outcome {
    // Reductions that preserve the verdict.
    let observed: HashSet<u64> = ops
        .iter()
        .filter_map(|o| match o.kind {
            OpKind::Read(Some(v)) => Some(v),
            _ => None,
        })
        .collect();
    let written: HashSet<u64> = ops
        .iter()
        .filter_map(|o| match o.kind {
            OpKind::Write(v) => Some(v),
            _ => None,
        })
        .collect();
    if let Some(bad) = ops.iter().find(|o| match o.kind {
        OpKind::Read(Some(v)) => !written.contains(&v),
        _ => false,
    }) {
        return Outcome::NotLinearizable(format!("{bad:?} read a value nobody wrote"));
    }
    let ops: Vec<&Op> = ops
        .iter()
        .filter(|o| match (o.kind, o.ret) {
            (OpKind::Write(v), None) => observed.contains(&v),
            _ => true,
        })
        .collect();
    let n = ops.len();
    if n == 0 {
        return Outcome::Linearizable;
    }

    // Events sorted by time; at equal times calls come first (the more permissive order).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoke, true, i));
        events.push((op.ret.unwrap_or(u64::MAX), false, i));
    }
    events.sort_by_key(|&(t, call, i)| (t, !call, i));
    let mut nodes = vec![Node { prev: 0, next: 0, op: usize::MAX, call: false, matching: 0 }];
    let mut ret_node = vec![0usize; n];
    for (k, &(_, call, op)) in events.iter().enumerate() {
        let idx = k + 1;
        nodes.push(Node { prev: idx - 1, next: 0, op, call, matching: 0 });
        nodes[idx - 1].next = idx;
        if !call {
            ret_node[op] = idx;
        }
    }
    // Terminate the list with usize::MAX as "no next".
    let last = nodes.len() - 1;
    nodes[last].next = usize::MAX;
    for node in nodes.iter_mut().skip(1) {
        if node.call {
            node.matching = ret_node[node.op];
        }
    }

    fn lift(nodes: &mut [Node], call: usize) {
        let ret = nodes[call].matching;
        let (p, nx) = (nodes[call].prev, nodes[call].next);
        nodes[p].next = nx;
        if nx != usize::MAX {
            nodes[nx].prev = p;
        }
        let (p, nx) = (nodes[ret].prev, nodes[ret].next);
        nodes[p].next = nx;
        if nx != usize::MAX {
            nodes[nx].prev = p;
        }
    }
    fn unlift(nodes: &mut [Node], call: usize) {
        let ret = nodes[call].matching;
        let (p, nx) = (nodes[ret].prev, nodes[ret].next);
        nodes[p].next = ret;
        if nx != usize::MAX {
            nodes[nx].prev = ret;
        }
        let (p, nx) = (nodes[call].prev, nodes[call].next);
        nodes[p].next = call;
        if nx != usize::MAX {
            nodes[nx].prev = call;
        }
    }

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashMap<(Vec<u64>, Option<u64>), ()> = HashMap::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut state: Option<u64> = None;
    let mut entry = nodes[0].next;
    let mut steps = 0u64;
    let mut deepest: Vec<usize> = Vec::new();
    while nodes[0].next != usize::MAX {
        steps += 1;
        if steps > budget {
            return Outcome::GaveUp(format!("{n} ops, no verdict after {budget} steps"));
        }
        let node = nodes[entry];
        if node.call {
            let op = ops[node.op];
            let next_state = match op.kind {
                OpKind::Write(v) => Some(Some(v)),
                OpKind::Read(r) if r == state => Some(state),
                OpKind::Read(_) => None,
            };
            let mut advanced = false;
            if let Some(next_state) = next_state {
                linearized[node.op / 64] |= 1 << (node.op % 64);
                if cache.insert((linearized.clone(), next_state), ()).is_none() {
                    stack.push((entry, state));
                    state = next_state;
                    lift(&mut nodes, entry);
                    entry = nodes[0].next;
                    advanced = true;
                    if stack.len() > deepest.len() {
                        deepest = stack.iter().map(|&(e, _)| nodes[e].op).collect();
                    }
                } else {
                    linearized[node.op / 64] &= !(1 << (node.op % 64));
                }
            }
            if !advanced {
                entry = node.next;
            }
        } else {
            // A return event reached: its operation should have been linearized by now.
            let Some((call, prev_state)) = stack.pop() else {
                return Outcome::NotLinearizable(describe(&ops, &deepest));
            };
            state = prev_state;
            let op = nodes[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            unlift(&mut nodes, call);
            entry = nodes[call].next;
        }
    }
    Outcome::Linearizable
}

/// Explains a failed search: the longest linearizable prefix found and what was left.
fn describe(ops: &[&Op], deepest: &[usize]) -> String {
    let done: HashSet<usize> = deepest.iter().copied().collect();
    let mut s = format!(
        "{} ops; the longest linearizable prefix has {} ops and ends with:\n",
        ops.len(),
        deepest.len()
    );
    for &i in deepest.iter().rev().take(5).collect::<Vec<_>>().iter().rev() {
        s.push_str(&format!("  {:?}\n", ops[*i]));
    }
    let mut rest: Vec<&Op> = (0..ops.len()).filter(|i| !done.contains(i)).map(|i| ops[i]).collect();
    rest.sort_by_key(|o| o.invoke);
    s.push_str("none of these could come next:\n");
    for o in rest.iter().take(8) {
        s.push_str(&format!("  {o:?}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(client: usize, v: u64, invoke: u64, ret: Option<u64>) -> Op {
        Op { client, key: "k".into(), kind: OpKind::Write(v), invoke, ret }
    }

    fn r(client: usize, v: Option<u64>, invoke: u64, ret: u64) -> Op {
        Op { client, key: "k".into(), kind: OpKind::Read(v), invoke, ret: Some(ret) }
    }

    #[test]
    fn empty_and_sequential_histories_are_linearizable() {
        assert!(check(&[]).is_linearizable());
        let h = [r(0, None, 0, 1), w(0, 1, 2, Some(3)), r(0, Some(1), 4, 5), w(0, 2, 6, Some(7))];
        assert!(check(&h).is_linearizable());
    }

    #[test]
    fn accepts_a_valid_concurrent_history() {
        // Two overlapping writes; concurrent reads see them in either order, but all
        // readers agree with one order and reads after both returned see the later one.
        let h = [
            w(0, 1, 0, Some(10)),
            w(1, 2, 2, Some(8)),
            r(2, Some(2), 3, 4),
            r(3, Some(1), 5, 9),
            r(2, Some(1), 11, 12),
            r(3, Some(1), 13, 14),
        ];
        assert!(check(&h).is_linearizable(), "{:?}", check(&h));
    }

    #[test]
    fn rejects_a_stale_read_after_a_completed_write() {
        let h = [w(0, 1, 0, Some(1)), w(0, 2, 2, Some(3)), r(1, Some(1), 4, 5)];
        assert!(matches!(check(&h), Outcome::NotLinearizable(_)), "{:?}", check(&h));
        // Also the initial value after a completed write.
        let h = [w(0, 1, 0, Some(1)), r(1, None, 2, 3)];
        assert!(matches!(check(&h), Outcome::NotLinearizable(_)));
    }

    #[test]
    fn rejects_readers_disagreeing_on_the_order_of_writes() {
        // After both writes completed, one reader sees 1 then 2, the other 2 then 1.
        let h = [
            w(0, 1, 0, Some(10)),
            w(1, 2, 0, Some(10)),
            r(2, Some(1), 1, 2),
            r(2, Some(2), 3, 4),
            r(3, Some(2), 5, 6),
            r(3, Some(1), 7, 8),
        ];
        assert!(matches!(check(&h), Outcome::NotLinearizable(_)));
    }

    #[test]
    fn rejects_reading_a_value_never_written() {
        let h = [w(0, 1, 0, Some(1)), r(1, Some(7), 2, 3)];
        assert!(matches!(check(&h), Outcome::NotLinearizable(_)));
    }

    #[test]
    fn unknown_writes_may_or_may_not_take_effect() {
        // Timed out, never seen: fine.
        let h = [w(0, 1, 0, Some(1)), w(1, 2, 2, None), r(2, Some(1), 3, 4)];
        assert!(check(&h).is_linearizable());
        // Timed out, seen much later (committed after the client gave up): fine.
        let h = [w(0, 1, 0, Some(1)), w(1, 2, 2, None), r(2, Some(1), 3, 4), r(2, Some(2), 90, 99)];
        assert!(check(&h).is_linearizable());
        // But once seen it cannot disappear again.
        let h = [w(0, 1, 0, Some(1)), w(1, 2, 2, None), r(2, Some(2), 3, 4), r(2, Some(1), 5, 6)];
        assert!(matches!(check(&h), Outcome::NotLinearizable(_)));
        // And it cannot take effect before it was invoked.
        let h = [w(0, 1, 0, Some(1)), r(2, Some(2), 3, 4), w(1, 2, 5, None)];
        assert!(matches!(check(&h), Outcome::NotLinearizable(_)));
    }

    #[test]
    fn keys_are_checked_independently() {
        let mut h = vec![w(0, 1, 0, Some(1)), r(1, Some(1), 2, 3)];
        h.push(Op {
            client: 2,
            key: "other".into(),
            kind: OpKind::Read(None),
            invoke: 4,
            ret: Some(5),
        });
        assert!(check(&h).is_linearizable());
        h.push(Op {
            client: 2,
            key: "other".into(),
            kind: OpKind::Read(Some(1)),
            invoke: 6,
            ret: Some(7),
        });
        match check(&h) {
            Outcome::NotLinearizable(why) => assert!(why.contains("\"other\""), "{why}"),
            o => panic!("expected a violation on key other, got {o:?}"),
        }
    }

    /// A valid history of `n` ops by 8 clients: a sequential run whose operations are widened
    /// into overlapping intervals; one write in `unknown_every` has an unknown outcome.
    fn widened_history(n: u64, unknown_every: u64) -> Vec<Op> {
        let mut h = Vec::new();
        let mut state = None;
        let mut next_value = 1;
        let mut rand = crate::rng::xorshift64(12345);
        for i in 0..n {
            let client = (i % 8) as usize;
            // Linearization point at 100*i; the interval spans up to 4 neighbours each side.
            let point = 100 * i;
            let invoke = point.saturating_sub(rand() % 400);
            let ret = point + rand() % 400;
            if rand().is_multiple_of(3) {
                state = Some(next_value);
                let ret = if rand().is_multiple_of(unknown_every) { None } else { Some(ret) };
                h.push(w(client, next_value, invoke, ret));
                next_value += 1;
            } else {
                h.push(r(client, state, invoke, ret));
            }
        }
        h
    }

    #[test]
    fn a_few_hundred_concurrent_ops_are_checked_quickly() {
        for unknown_every in [10, 2] {
            let h = widened_history(400, unknown_every);
            let started = Instant::now();
            assert!(check(&h).is_linearizable(), "{:?}", check(&h));
            assert!(started.elapsed().as_secs() < 5, "took {:?}", started.elapsed());
            // A read, after everything, of the first value whose write completed: stale.
            let first = h
                .iter()
                .find_map(|o| match (o.kind, o.ret) {
                    (OpKind::Write(v), Some(_)) => Some(v),
                    _ => None,
                })
                .unwrap();
            let mut bad = h.clone();
            bad.push(r(9, Some(first), 100 * 400 + 1_000, 100 * 400 + 2_000));
            let started = Instant::now();
            assert!(matches!(check(&bad), Outcome::NotLinearizable(_)), "{:?}", check(&bad));
            assert!(started.elapsed().as_secs() < 5, "took {:?}", started.elapsed());
        }
    }
}
