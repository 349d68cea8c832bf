//! Compiles oxcd's own etcd v3 API protobuf definitions (see `proto/`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().build_server(true).build_client(true).compile_protos(
        &[
            "proto/mvccpb/kv.proto",
            "proto/authpb/auth.proto",
            "proto/etcdserverpb/rpc.proto",
            "proto/v3lockpb/v3lock.proto",
            "proto/v3electionpb/v3election.proto",
            "proto/oxcdpb/internal.proto",
        ],
        &["proto"],
    )?;
    Ok(())
}
