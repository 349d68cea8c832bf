//! Auth: users, roles, key permissions, the enabled flag and the auth revision, as etcd 3.5's
//! `server/auth`; plus this member's simple tokens.
//!
//! - The store is applied state: changed only by `apply` (called from `crate::apply` for the
//!   auth raft commands), persisted in `Cf::Auth` (layout in `storage::schema::auth_keys`) in
//!   the applier's `WriteBatch`, and mirrored in memory behind an `RwLock` (`reload` re-reads
//!   it after a snapshot install). Apply is deterministic: the API layer hashes passwords with
//!   bcrypt and picks token prefixes before proposing.
//! - Tokens (`token`) are etcd's simple tokens, known to every member through raft, never
//!   persisted, expiring on each member's own clock.
//! - Permission checks (`check*`) follow etcd's `isOpPermitted`: with auth enabled a request
//!   needs a user, an auth revision no older than the store's, and either the root role or
//!   permissions covering its keys (`perm`). Handlers call them with the `AuthInfo` that
//!   `user_from` reads from the request's `token` metadata.
//!
//! Owns `Cf::Auth` only; never touches the MVCC store or the network. The only tonic type it
//! sees is the request metadata that carries the token.

pub mod jwt;
pub mod perm;
pub mod token;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use prost::Message;
use rocksdb::WriteBatch;
use tonic::metadata::MetadataMap;

use crate::error::{Error, Result};
use crate::pb::authpb::{Permission, Role, User, UserAddOptions};
use crate::pb::etcdserverpb::request_op::Request as Op;
use crate::pb::etcdserverpb::{
    AuthDisableResponse, AuthEnableResponse, AuthRoleAddRequest, AuthRoleAddResponse,
    AuthRoleDeleteResponse, AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse,
    AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse, AuthUserAddRequest,
    AuthUserAddResponse, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse,
    AuthUserDeleteResponse, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse,
    AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse, AuthenticateResponse, ResponseHeader,
    TxnRequest,
};
use crate::pb::oxcdpb::internal_request::Request as Cmd;
use crate::pb::oxcdpb::internal_response::Response as Out;
use crate::pb::oxcdpb::RequestAuth;
use crate::storage::schema::auth_keys;
use crate::storage::{Cf, Storage};

pub use perm::Access;

/// The user that may always manage auth, and that must exist before auth is enabled.
pub const ROOT_USER: &str = "root";
/// The role with every permission; it needs no `role add` to be granted.
pub const ROOT_ROLE: &str = "root";
/// How long a request waits for this member to apply the entry that created its token (a
/// client may present a token, created through another member, before this one applied it).
const TOKEN_APPLY_WAIT: Duration = Duration::from_secs(5);
/// The gRPC metadata keys a token may arrive under (etcd's `TokenFieldNameGRPC` and, from
/// the gRPC gateway, `TokenFieldNameSwagger`).
const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];
/// The metadata key under which the client listener passes on the common name of the
/// connection's verified client certificate (`crate::tls`); a value sent by a client under
/// this key is removed before any handler sees the request.
pub const CERT_CN_KEY: &str = "x-oxcd-client-cert-cn";

/// Who sent a request: the user its token stands for and the auth revision when the token was
/// checked. The default (empty user, revision 0) is a request without a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    /// The user name; empty without a token.
    pub user: String,
    /// The auth revision the request was authorized at; 0 without a token.
    pub revision: u64,
}

impl AuthInfo {
    /// The form that travels with a proposal, for the checks at apply.
    pub fn to_request(&self) -> RequestAuth {
        RequestAuth { username: self.user.clone(), revision: self.revision }
    }
}

impl From<&RequestAuth> for AuthInfo {
    fn from(r: &RequestAuth) -> AuthInfo {
        AuthInfo { user: r.username.clone(), revision: r.revision }
    }
}

/// The applied auth state, as in `Cf::Auth`.
#[derive(Debug, Clone, PartialEq)]
struct State {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
}

/// The auth store of a member.
pub struct AuthStore {
    storage: Storage,
    /// Read by every permission check, written only by apply (one entry at a time).
    state: RwLock<State>,
    tokens: token::Tokens,
    /// `--auth-token jwt,...`: tokens are signed JWTs instead of `tokens` entries.
    jwt: Option<Arc<jwt::Jwt>>,
    /// `--client-cert-auth`: a request without a token is made by the user its client
    /// certificate names (etcd's `AuthInfoFromTLS`).
    cert_users: bool,
    /// The applied index, to wait for the entry a token was created at.
    applied: OnceLock<tokio::sync::watch::Receiver<u64>>,
}

impl AuthStore {
    /// Loads the auth state from the database.
    pub fn open(storage: Storage) -> Result<AuthStore> {
        let state = load(&storage)?;
        Ok(AuthStore {
            storage,
            state: RwLock::new(state),
            tokens: token::Tokens::new(token::TOKEN_TTL),
            jwt: None,
            cert_users: false,
            applied: OnceLock::new(),
        })
    }

    /// Sets how long a simple token lives unused (`--auth-token-ttl`).
    pub fn with_token_ttl(mut self, ttl: Duration) -> AuthStore {
        self.tokens = token::Tokens::new(ttl);
        self
    }

    /// Hands out and accepts JWTs (`--auth-token jwt,...`) instead of simple tokens.
    pub fn with_jwt(mut self, jwt: Option<jwt::Jwt>) -> AuthStore {
        self.jwt = jwt.map(Arc::new);
        self
    }

    /// Makes the client certificate's common name the user of requests without a token
    /// (`--client-cert-auth`).
    pub fn with_cert_users(mut self, on: bool) -> AuthStore {
        self.cert_users = on;
        self
    }

    /// Re-reads the auth state from the database (after a snapshot was installed). Tokens
    /// survive unless the snapshot turned auth on or off.
    pub fn reload(&self) -> Result<()> {
        let fresh = load(&self.storage)?;
        let mut state = self.write();
        if fresh.enabled != state.enabled {
            self.tokens.clear();
        }
        *state = fresh;
        Ok(())
    }

    /// Lets token checks wait for the applied index (set once by the applier).
    pub fn follow_applied(&self, applied: tokio::sync::watch::Receiver<u64>) {
        let _ = self.applied.set(applied);
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether auth is enabled.
    pub fn is_enabled(&self) -> bool {
        self.read().enabled
    }

    /// The auth revision.
    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    // ---- tokens and callers -------------------------------------------------------------

    /// The caller of a request, from its `token` metadata: the default `AuthInfo` without a
    /// token, `InvalidAuthToken` for an unknown, expired or malformed one. As etcd, a token
    /// is checked even while auth is disabled (then every token is unknown).
    pub async fn user_from(&self, metadata: &MetadataMap) -> Result<AuthInfo> {
        let Some(token) = token_of(metadata) else { return Ok(self.cert_user(metadata)) };
        if self.jwt.is_some() {
            return self.token_info(token);
        }
        let index = token::index_of(token).ok_or(Error::InvalidAuthToken)?;
        if let Some(applied) = self.applied.get() {
            let mut applied = applied.clone();
            let wait = tokio::time::timeout(TOKEN_APPLY_WAIT, applied.wait_for(|a| *a >= index));
            if !matches!(wait.await, Ok(Ok(_))) {
                return Err(Error::InvalidAuthToken);
            }
        }
        self.token_info(token)
    }

    /// The user named by the connection's client certificate, or no user.
    fn cert_user(&self, metadata: &MetadataMap) -> AuthInfo {
        let cn = metadata.get(CERT_CN_KEY).and_then(|v| v.to_str().ok());
        match cn {
            Some(cn) if self.cert_users && !cn.is_empty() => {
                AuthInfo { user: cn.to_string(), revision: self.revision() }
            }
            _ => AuthInfo::default(),
        }
    }

    fn token_info(&self, token: &str) -> Result<AuthInfo> {
        if let Some(jwt) = &self.jwt {
            let (user, revision) = jwt.verify(token).ok_or(Error::InvalidAuthToken)?;
            return Ok(AuthInfo { user, revision });
        }
        let user = self.tokens.lookup(token, Instant::now()).ok_or(Error::InvalidAuthToken)?;
        Ok(AuthInfo { user, revision: self.revision() })
    }

    /// The Watch service's check for one watch create request (etcd's `isWatchPermitted`):
    /// the caller named by the stream's `token` metadata needs READ on `[key, range_end)`
    /// (`key` empty means "\0"). Does not wait for the token's entry to be applied. As in
    /// etcd 3.5, a `range_end` of "\0" (every key from `key` on) becomes empty before the
    /// check, which then checks `key` alone.
    pub fn check_watch(&self, metadata: &MetadataMap, key: &[u8], range_end: &[u8]) -> Result<()> {
        let caller = match token_of(metadata) {
            Some(token) => self.token_info(token)?,
            None => self.cert_user(metadata),
        };
        let key: &[u8] = if key.is_empty() { &[0] } else { key };
        let range_end: &[u8] = if range_end == [0] { &[] } else { range_end };
        self.check(&caller, key, range_end, Access::Read)
    }

    /// Checks a password (etcd's `CheckPassword`); returns the auth revision it was checked
    /// at. Slow on purpose (bcrypt): call it off the async threads.
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64> {
        let (hash, revision) = {
            let state = self.read();
            if !state.enabled {
                return Err(Error::AuthNotEnabled);
            }
            let user = state.users.get(name).ok_or(Error::AuthFailed)?;
            if no_password(user) {
                return Err(Error::NoPasswordUser);
            }
            (user.password.clone(), state.revision)
        };
        let hash = std::str::from_utf8(&hash).map_err(|_| Error::AuthFailed)?;
        match bcrypt::verify(password, hash) {
            Ok(true) => Ok(revision),
            _ => Err(Error::AuthFailed),
        }
    }

    // ---- permission checks --------------------------------------------------------------

    /// etcd's `isOpPermitted`: `access` on `key` (`range_end` empty) or `[key, range_end)`.
    pub fn check(
        &self,
        caller: &AuthInfo,
        key: &[u8],
        range_end: &[u8],
        access: Access,
    ) -> Result<()> {
        let state = self.read();
        if !state.enabled {
            return Ok(());
        }
        if caller.revision == 0 {
            return Err(Error::UserEmpty);
        }
        if caller.revision < state.revision {
            return Err(Error::AuthOldRevision);
        }
        let user = state.users.get(&caller.user).ok_or(Error::PermissionDenied)?;
        if has_role(user, ROOT_ROLE) {
            return Ok(());
        }
        let perms = user
            .roles
            .iter()
            .filter_map(|r| state.roles.get(r))
            .flat_map(|r| r.key_permission.iter());
        if perm::permits(perms, key, range_end, access) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// READ on a key or range.
    pub fn check_range(&self, caller: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.check(caller, key, range_end, Access::Read)
    }

    /// WRITE on a key or range.
    pub fn check_write(&self, caller: &AuthInfo, key: &[u8], range_end: &[u8]) -> Result<()> {
        self.check(caller, key, range_end, Access::Write)
    }

    /// etcd's `checkTxnAuth`: READ on every compare and range, WRITE on every put and delete
    /// (and READ for a delete's `prev_kv`), on both branches and in nested txns.
    pub fn check_txn(&self, caller: &AuthInfo, txn: &TxnRequest) -> Result<()> {
        for c in &txn.compare {
            self.check_range(caller, &c.key, &c.range_end)?;
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match &op.request {
                Some(Op::RequestRange(r)) => self.check_range(caller, &r.key, &r.range_end)?,
                Some(Op::RequestPut(p)) => self.check_write(caller, &p.key, &[])?,
                Some(Op::RequestDeleteRange(d)) => {
                    if d.prev_kv {
                        self.check_range(caller, &d.key, &d.range_end)?;
                    }
                    self.check_write(caller, &d.key, &d.range_end)?;
                }
                Some(Op::RequestTxn(t)) => self.check_txn(caller, t)?,
                None => {}
            }
        }
        Ok(())
    }

    /// etcd's `IsAdminPermitted`: with auth enabled, the caller must have the root role.
    pub fn check_admin(&self, caller: &AuthInfo) -> Result<()> {
        let state = self.read();
        if !state.enabled {
            return Ok(());
        }
        if caller.user.is_empty() {
            return Err(Error::UserEmpty);
        }
        let user = state.users.get(&caller.user).ok_or(Error::UserNotFound)?;
        if has_role(user, ROOT_ROLE) {
            Ok(())
        } else {
            Err(Error::PermissionDenied)
        }
    }

    /// With auth enabled, the request must name a user (etcd's `requireAuthInfo`).
    pub fn require_user(&self, caller: &AuthInfo) -> Result<()> {
        if self.is_enabled() && caller.user.is_empty() {
            return Err(Error::UserEmpty);
        }
        Ok(())
    }

    /// A read checked at `caller.revision` is stale if the auth store changed while it ran
    /// (etcd's check at the end of `doSerialize`).
    pub fn check_unchanged(&self, caller: &AuthInfo) -> Result<()> {
        if caller.revision != 0 && caller.revision != self.revision() {
            return Err(Error::AuthOldRevision);
        }
        Ok(())
    }

    /// Whether `user` exists and has `role`.
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.read().users.get(user).is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    // ---- reads for the Auth service ------------------------------------------------------

    /// Whether auth is enabled, and the auth revision.
    pub fn status(&self) -> (bool, u64) {
        let state = self.read();
        (state.enabled, state.revision)
    }

    /// A user's roles, sorted.
    pub fn user_roles(&self, name: &str) -> Result<Vec<String>> {
        self.read().users.get(name).map(|u| u.roles.clone()).ok_or(Error::UserNotFound)
    }

    /// Every user name, sorted.
    pub fn user_names(&self) -> Vec<String> {
        self.read().users.keys().cloned().collect()
    }

    /// A role's permissions, sorted by key.
    pub fn role_permissions(&self, name: &str) -> Result<Vec<Permission>> {
        self.read().roles.get(name).map(|r| r.key_permission.clone()).ok_or(Error::RoleNotFound)
    }

    /// Every role name, sorted.
    pub fn role_names(&self) -> Vec<String> {
        self.read().roles.keys().cloned().collect()
    }

    // ---- apply --------------------------------------------------------------------------

    /// Applies one auth command at log `index` into `batch`; `kv_revision` goes in the
    /// response header. Errors leave both the batch and the memory state untouched.
    pub fn apply(
        &self,
        batch: &mut WriteBatch,
        cmd: Cmd,
        index: u64,
        kv_revision: i64,
    ) -> Result<Out> {
        let header = Some(ResponseHeader { revision: kv_revision, ..Default::default() });
        let mut state = self.write();
        let mut tx = Tx { store: self, state: &mut state, batch };
        Ok(match cmd {
            Cmd::AuthEnable(_) => {
                tx.enable()?;
                Out::AuthEnable(AuthEnableResponse { header })
            }
            Cmd::AuthDisable(_) => {
                tx.disable();
                Out::AuthDisable(AuthDisableResponse { header })
            }
            Cmd::Authenticate(a) => {
                let token = tx.authenticate(a.name, &a.token, index)?;
                Out::Authenticate(AuthenticateResponse { header, token })
            }
            Cmd::AuthUserAdd(r) => {
                tx.user_add(r)?;
                Out::AuthUserAdd(AuthUserAddResponse { header })
            }
            Cmd::AuthUserDelete(r) => {
                tx.user_delete(&r.name)?;
                Out::AuthUserDelete(AuthUserDeleteResponse { header })
            }
            Cmd::AuthUserChangePassword(r) => {
                tx.change_password(r)?;
                Out::AuthUserChangePassword(AuthUserChangePasswordResponse { header })
            }
            Cmd::AuthUserGrantRole(r) => {
                tx.grant_role(r)?;
                Out::AuthUserGrantRole(AuthUserGrantRoleResponse { header })
            }
            Cmd::AuthUserRevokeRole(r) => {
                tx.revoke_role(r)?;
                Out::AuthUserRevokeRole(AuthUserRevokeRoleResponse { header })
            }
            Cmd::AuthRoleAdd(r) => {
                tx.role_add(r)?;
                Out::AuthRoleAdd(AuthRoleAddResponse { header })
            }
            Cmd::AuthRoleDelete(r) => {
                tx.role_delete(&r.role)?;
                Out::AuthRoleDelete(AuthRoleDeleteResponse { header })
            }
            Cmd::AuthRoleGrantPermission(r) => {
                tx.grant_permission(r)?;
                Out::AuthRoleGrantPermission(AuthRoleGrantPermissionResponse { header })
            }
            Cmd::AuthRoleRevokePermission(r) => {
                tx.revoke_permission(r)?;
                Out::AuthRoleRevokePermission(AuthRoleRevokePermissionResponse { header })
            }
            other => return Err(Error::Internal(format!("not an auth command: {other:?}"))),
        })
    }
}

/// Whether applying `cmd` needs the root role when auth is enabled (etcd's
/// `needAdminPermission`, less the read-only requests oxcd serves without raft).
pub fn needs_admin(cmd: &Cmd) -> bool {
    matches!(
        cmd,
        Cmd::AuthEnable(_)
            | Cmd::AuthDisable(_)
            | Cmd::AuthUserAdd(_)
            | Cmd::AuthUserDelete(_)
            | Cmd::AuthUserChangePassword(_)
            | Cmd::AuthUserGrantRole(_)
            | Cmd::AuthUserRevokeRole(_)
            | Cmd::AuthRoleAdd(_)
            | Cmd::AuthRoleDelete(_)
            | Cmd::AuthRoleGrantPermission(_)
            | Cmd::AuthRoleRevokePermission(_)
    )
}

/// etcd's Maintenance service returns some auth errors untranslated (gRPC code Unknown, the
/// auth package's own text); this gives them that form.
pub fn untranslated(err: Error) -> Error {
    match err {
        Error::UserEmpty => Error::AuthUntranslated("auth: user name is empty"),
        Error::UserNotFound => Error::AuthUntranslated("auth: user not found"),
        Error::PermissionDenied => Error::AuthUntranslated("auth: permission denied"),
        Error::InvalidAuthToken => Error::AuthUntranslated("auth: invalid auth token"),
        other => other,
    }
}

/// A bcrypt hash of `password` at `cost` (`--bcrypt-cost`), base64-encoded as etcd puts it
/// in `hashedPassword`. Slow on purpose: call it off the async threads.
pub fn hash_password(password: &str, cost: u32) -> Result<String> {
    let hash = bcrypt::hash_with_result(password, cost)
        .map_err(|e| Error::internal("bcrypt", e))?
        .format_for_version(bcrypt::Version::TwoA);
    Ok(base64::engine::general_purpose::STANDARD.encode(hash))
}

fn token_of(metadata: &MetadataMap) -> Option<&str> {
    TOKEN_KEYS.iter().find_map(|k| metadata.get(*k)).and_then(|v| v.to_str().ok())
}

fn has_role(user: &User, role: &str) -> bool {
    user.roles.iter().any(|r| r == role)
}

fn no_password(user: &User) -> bool {
    user.options.as_ref().is_some_and(|o| o.no_password)
}

/// The stored password of a new or changed password: the API layer's hash. A plain password
/// without a hash (an entry from a member that does not hash) is refused rather than hashed
/// here, which would make apply depend on randomness.
fn stored_password(password: &str, hashed: &str) -> Result<Vec<u8>> {
    if hashed.is_empty() && !password.is_empty() {
        return Err(Error::NoPasswordUser);
    }
    base64::engine::general_purpose::STANDARD.decode(hashed).map_err(|_| Error::NoPasswordUser)
}

fn load(storage: &Storage) -> Result<State> {
    let mut state =
        State { enabled: false, revision: 1, users: BTreeMap::new(), roles: BTreeMap::new() };
    for item in storage.db().iterator_cf(storage.cf(Cf::Auth), rocksdb::IteratorMode::Start) {
        let (key, value) = item?;
        if *key == *auth_keys::ENABLED {
            state.enabled = *value == [1];
        } else if *key == *auth_keys::REVISION {
            let bytes: [u8; 8] = value
                .as_ref()
                .try_into()
                .map_err(|_| Error::Internal("corrupt auth revision".into()))?;
            state.revision = u64::from_be_bytes(bytes);
        } else if let Some(name) = key.strip_prefix(auth_keys::USER_PREFIX) {
            let user =
                User::decode(value.as_ref()).map_err(|e| Error::internal("decode user", e))?;
            state.users.insert(name_of(name)?, user);
        } else if let Some(name) = key.strip_prefix(auth_keys::ROLE_PREFIX) {
            let role =
                Role::decode(value.as_ref()).map_err(|e| Error::internal("decode role", e))?;
            state.roles.insert(name_of(name)?, role);
        }
    }
    Ok(state)
}

fn name_of(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| Error::internal("auth name", e))
}

fn user_key(name: &str) -> Vec<u8> {
    [auth_keys::USER_PREFIX, name.as_bytes()].concat()
}

fn role_key(name: &str) -> Vec<u8> {
    [auth_keys::ROLE_PREFIX, name.as_bytes()].concat()
}

/// One auth command being applied: validates first, then changes memory and the batch
/// together, so a refused command changes nothing.
struct Tx<'a> {
    store: &'a AuthStore,
    state: &'a mut State,
    batch: &'a mut WriteBatch,
}

impl<'a> Tx<'a> {
    fn cf(&self) -> &'a rocksdb::ColumnFamily {
        self.store.storage.cf(Cf::Auth)
    }

    /// Every change to users, roles or permissions moves the auth revision on, which makes
    /// requests authorized before it fail with `AuthOldRevision`.
    fn bump(&mut self) {
        self.state.revision += 1;
        self.batch.put_cf(self.cf(), auth_keys::REVISION, self.state.revision.to_be_bytes());
    }

    fn put_user(&mut self, name: &str, user: User) {
        self.batch.put_cf(self.cf(), user_key(name), user.encode_to_vec());
        self.state.users.insert(name.to_string(), user);
    }

    fn put_role(&mut self, name: &str, role: Role) {
        self.batch.put_cf(self.cf(), role_key(name), role.encode_to_vec());
        self.state.roles.insert(name.to_string(), role);
    }

    /// etcd 3.5 does not move the revision on enable.
    fn enable(&mut self) -> Result<()> {
        if self.state.enabled {
            return Ok(());
        }
        let root = self.state.users.get(ROOT_USER).ok_or(Error::RootUserNotExist)?;
        if !has_role(root, ROOT_ROLE) {
            return Err(Error::RootRoleNotExist);
        }
        self.state.enabled = true;
        self.batch.put_cf(self.cf(), auth_keys::ENABLED, [1u8]);
        self.store.tokens.clear();
        Ok(())
    }

    fn disable(&mut self) {
        if !self.state.enabled {
            return;
        }
        self.state.enabled = false;
        self.batch.put_cf(self.cf(), auth_keys::ENABLED, [0u8]);
        self.bump();
        self.store.tokens.clear();
    }

    /// The password was checked by the proposer; this only makes the token known here.
    fn authenticate(&mut self, name: String, prefix: &str, index: u64) -> Result<String> {
        if !self.state.enabled {
            return Err(Error::AuthNotEnabled);
        }
        let user = self.state.users.get(&name).ok_or(Error::AuthFailed)?;
        if no_password(user) {
            return Err(Error::AuthFailed);
        }
        if let Some(jwt) = &self.store.jwt {
            // Signed here, at the auth revision this entry applies at (etcd's `assign`).
            return jwt.sign(&name, self.state.revision).map_err(|e| {
                tracing::warn!(error = %e, "signing a JWT");
                Error::AuthFailed
            });
        }
        let token = token::make(prefix, index);
        // The token's idle clock is this member's own: not applied state.
        self.store.tokens.assign(token.clone(), name, Instant::now());
        Ok(token)
    }

    fn user_add(&mut self, r: AuthUserAddRequest) -> Result<()> {
        if r.name.is_empty() {
            return Err(Error::UserEmpty);
        }
        if self.state.users.contains_key(&r.name) {
            return Err(Error::UserAlreadyExist);
        }
        let options = r.options.unwrap_or(UserAddOptions { no_password: false });
        let password = if options.no_password {
            Vec::new()
        } else {
            stored_password(&r.password, &r.hashed_password)?
        };
        let user = User {
            name: r.name.clone().into_bytes(),
            password,
            roles: Vec::new(),
            options: Some(options),
        };
        self.put_user(&r.name, user);
        self.bump();
        Ok(())
    }

    fn user_delete(&mut self, name: &str) -> Result<()> {
        if self.state.enabled && name == ROOT_USER {
            return Err(Error::InvalidAuthMgmt);
        }
        if self.state.users.remove(name).is_none() {
            return Err(Error::UserNotFound);
        }
        self.batch.delete_cf(self.cf(), user_key(name));
        self.bump();
        self.store.tokens.invalidate_user(name);
        Ok(())
    }

    fn change_password(&mut self, r: AuthUserChangePasswordRequest) -> Result<()> {
        let mut user = self.state.users.get(&r.name).cloned().ok_or(Error::UserNotFound)?;
        user.password = if no_password(&user) {
            Vec::new()
        } else {
            stored_password(&r.password, &r.hashed_password)?
        };
        self.put_user(&r.name, user);
        self.bump();
        self.store.tokens.invalidate_user(&r.name);
        Ok(())
    }

    fn grant_role(&mut self, r: AuthUserGrantRoleRequest) -> Result<()> {
        let mut user = self.state.users.get(&r.user).cloned().ok_or(Error::UserNotFound)?;
        if r.role != ROOT_ROLE && !self.state.roles.contains_key(&r.role) {
            return Err(Error::RoleNotFound);
        }
        // Granting a role twice is accepted and changes nothing, as in etcd.
        if let Err(at) = user.roles.binary_search(&r.role) {
            user.roles.insert(at, r.role);
            self.put_user(&r.user, user);
            self.bump();
        }
        Ok(())
    }

    fn revoke_role(&mut self, r: AuthUserRevokeRoleRequest) -> Result<()> {
        if self.state.enabled && r.name == ROOT_USER && r.role == ROOT_ROLE {
            return Err(Error::InvalidAuthMgmt);
        }
        let mut user = self.state.users.get(&r.name).cloned().ok_or(Error::UserNotFound)?;
        let before = user.roles.len();
        user.roles.retain(|role| *role != r.role);
        if user.roles.len() == before {
            return Err(Error::RoleNotGranted);
        }
        self.put_user(&r.name, user);
        self.bump();
        Ok(())
    }

    fn role_add(&mut self, r: AuthRoleAddRequest) -> Result<()> {
        if r.name.is_empty() {
            return Err(Error::RoleEmpty);
        }
        if self.state.roles.contains_key(&r.name) {
            return Err(Error::RoleAlreadyExist);
        }
        let role = Role { name: r.name.clone().into_bytes(), key_permission: Vec::new() };
        self.put_role(&r.name, role);
        self.bump();
        Ok(())
    }

    /// Also revokes the role from every user that has it.
    fn role_delete(&mut self, name: &str) -> Result<()> {
        if self.state.enabled && name == ROOT_ROLE {
            return Err(Error::InvalidAuthMgmt);
        }
        if self.state.roles.remove(name).is_none() {
            return Err(Error::RoleNotFound);
        }
        self.batch.delete_cf(self.cf(), role_key(name));
        let holders: Vec<(String, User)> = self
            .state
            .users
            .iter()
            .filter(|(_, u)| has_role(u, name))
            .map(|(n, u)| (n.clone(), u.clone()))
            .collect();
        for (user_name, mut user) in holders {
            user.roles.retain(|r| r != name);
            self.put_user(&user_name, user);
        }
        self.bump();
        Ok(())
    }

    /// As etcd: a permission on the same key and range end only changes its type; otherwise
    /// it is added and the list re-sorted by key.
    fn grant_permission(&mut self, r: AuthRoleGrantPermissionRequest) -> Result<()> {
        let perm = r.perm.ok_or(Error::PermissionNotGiven)?;
        let mut role = self.state.roles.get(&r.name).cloned().ok_or(Error::RoleNotFound)?;
        let perms = &mut role.key_permission;
        let at = perms.partition_point(|p| p.key < perm.key);
        match perms.get_mut(at) {
            Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                p.perm_type = perm.perm_type
            }
            _ => {
                perms.push(perm);
                perms.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        self.put_role(&r.name, role);
        self.bump();
        Ok(())
    }

    fn revoke_permission(&mut self, r: AuthRoleRevokePermissionRequest) -> Result<()> {
        let mut role = self.state.roles.get(&r.role).cloned().ok_or(Error::RoleNotFound)?;
        let before = role.key_permission.len();
        role.key_permission.retain(|p| p.key != r.key || p.range_end != r.range_end);
        if role.key_permission.len() == before {
            return Err(Error::PermissionNotGranted);
        }
        self.put_role(&r.role, role);
        self.bump();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
