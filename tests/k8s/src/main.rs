//! `oxcd-rig`: start the rig by hand (placeholder until the rig lands).
fn main() {}
