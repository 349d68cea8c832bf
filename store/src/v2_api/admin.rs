//! oxcd's admin endpoint for the online v2 → v3 migration: `POST /oxcd/v2/migrate` on the
//! client port (`?overwrite=true`, `?no_ttl=true`) proposes one `MigrateToV3` command, so
//! the whole v2 store becomes v3 keys atomically at one revision on every member, with no
//! restart. `oxcd migrate --endpoints URL` calls it.
//!
//! Served whether or not `--enable-v2` is set (a member may hold v2 data written while it
//! was). Refused while auth is enabled: it writes v3 keys without a caller's permissions.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

use crate::member::handle::Member;
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::v2::command::{V2Command, V2Outcome};
use crate::v2::convert::ConvertOptions;
use crate::v2::event::now_ns;

/// Where the endpoint lives.
pub const MIGRATE_PATH: &str = "/oxcd/v2/migrate";

/// The admin routes.
pub fn router(server: Member) -> Router {
    Router::new().route(MIGRATE_PATH, post(migrate)).with_state(server)
}

async fn migrate(State(server): State<Member>, req: Request) -> (StatusCode, String) {
    if server.auth_enabled() {
        return answer(
            StatusCode::UNAUTHORIZED,
            "auth is enabled: disable it to migrate online, or migrate offline",
        );
    }
    let query = req.uri().query().unwrap_or("");
    let flag = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .any(|(k, v)| k == name && (v == "true" || v == "1"))
    };
    let options = ConvertOptions { no_ttl: flag("no_ttl"), overwrite: flag("overwrite") };
    let cmd = V2Command::MigrateToV3 { time: now_ns(), options };
    let out = match server.propose(Cmd::V2(cmd.encode())).await {
        Ok(Out::V2(out)) => V2Outcome::decode(&out).map_err(|e| e.to_string()),
        Ok(other) => Err(format!("unexpected response {other:?}")),
        Err(e) => Err(e.to_string()),
    };
    match out {
        Ok(V2Outcome::Migrated(done)) => {
            (StatusCode::OK, serde_json::to_string(&done).unwrap_or_default() + "\n")
        }
        Ok(V2Outcome::Refused(refused)) => answer(StatusCode::CONFLICT, &refused.to_string()),
        Ok(other) => {
            answer(StatusCode::INTERNAL_SERVER_ERROR, &format!("unexpected outcome {other:?}"))
        }
        Err(e) => answer(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

fn answer(status: StatusCode, message: &str) -> (StatusCode, String) {
    (status, serde_json::json!({ "error": message }).to_string() + "\n")
}
