//! `oxcd-operator`: the controller binary (placeholder until the operator lands).
fn main() {}
