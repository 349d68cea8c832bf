//! The auth store against a real RocksDB: etcd's rules, revisions and apply determinism.

use std::sync::OnceLock;

use tonic::metadata::MetadataMap;

use super::*;
use crate::pb::authpb::permission::Type as PermType;
use crate::pb::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleDeleteRequest, AuthUserDeleteRequest,
    RangeRequest, RequestOp,
};
use crate::pb::oxcdpb::AuthenticateCommand;

struct Member {
    _dir: tempfile::TempDir,
    storage: Storage,
    auth: AuthStore,
    index: u64,
}

impl Member {
    fn new() -> Member {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("db")).unwrap();
        let auth = AuthStore::open(storage.clone()).unwrap();
        Member { _dir: dir, storage, auth, index: 0 }
    }

    /// Applies one command in its own batch, as the applier would.
    fn apply(&mut self, cmd: Cmd) -> Result<Out> {
        self.index += 1;
        let mut batch = WriteBatch::default();
        let out = self.auth.apply(&mut batch, cmd, self.index, 7);
        self.storage.db().write(batch).unwrap();
        out
    }

    fn ok(&mut self, cmd: Cmd) -> Out {
        self.apply(cmd).unwrap()
    }

    /// Every row of `Cf::Auth`.
    fn rows(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let db = self.storage.db();
        db.iterator_cf(self.storage.cf(Cf::Auth), rocksdb::IteratorMode::Start)
            .map(|item| {
                let (k, v) = item.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect()
    }
}

/// One bcrypt hash for every test: hashing is the slow part.
fn hashed(password: &str) -> String {
    static HASHES: OnceLock<(String, String)> = OnceLock::new();
    let (pw, hash) = HASHES.get_or_init(|| ("123".into(), hash_password("123", 4).unwrap()));
    assert_eq!(password, pw, "tests share one password");
    hash.clone()
}

fn user_add(name: &str) -> Cmd {
    Cmd::AuthUserAdd(AuthUserAddRequest {
        name: name.into(),
        hashed_password: hashed("123"),
        ..Default::default()
    })
}

fn role_add(name: &str) -> Cmd {
    Cmd::AuthRoleAdd(AuthRoleAddRequest { name: name.into() })
}

fn grant_role(user: &str, role: &str) -> Cmd {
    Cmd::AuthUserGrantRole(AuthUserGrantRoleRequest { user: user.into(), role: role.into() })
}

fn grant(role: &str, t: PermType, key: &str, end: &str) -> Cmd {
    Cmd::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest {
        name: role.into(),
        perm: Some(Permission { perm_type: t as i32, key: key.into(), range_end: end.into() }),
    })
}

fn enable() -> Cmd {
    Cmd::AuthEnable(AuthEnableRequest {})
}

/// The etcdctl tour of the README, as raft commands.
fn tour() -> Vec<Cmd> {
    vec![
        role_add("root"),
        grant("root", PermType::Readwrite, "foo", ""),
        user_add("root"),
        grant_role("root", "root"),
        enable(),
        role_add("ro"),
        grant("ro", PermType::Read, "foo", ""),
        grant("ro", PermType::Read, "pre/", "pre0"),
        grant("ro", PermType::Readwrite, "zzz", "\0"),
        grant("ro", PermType::Write, "a", "b"),
        grant("ro", PermType::Read, "a", "b"),
        user_add("alice"),
        grant_role("alice", "ro"),
        grant_role("alice", "ro"),
        Cmd::Authenticate(AuthenticateCommand {
            name: "alice".into(),
            token: "abcdefghijklmnop".into(),
        }),
    ]
}

fn caller(m: &Member, user: &str) -> AuthInfo {
    AuthInfo { user: user.into(), revision: m.auth.revision() }
}

#[test]
fn apply_is_deterministic() {
    let mut a = Member::new();
    let mut b = Member::new();
    let mut cmds = tour();
    cmds.push(Cmd::AuthRoleDelete(AuthRoleDeleteRequest { role: "ro".into() }));
    cmds.push(Cmd::AuthUserDelete(AuthUserDeleteRequest { name: "root".into() }));
    cmds.push(Cmd::AuthDisable(AuthDisableRequest {}));
    for cmd in cmds {
        let (x, y) = (a.apply(cmd.clone()), b.apply(cmd));
        assert_eq!(x, y);
    }
    assert_eq!(a.rows(), b.rows());
    assert_eq!(*a.auth.read(), *b.auth.read());
}

#[test]
fn reload_reads_back_what_apply_wrote() {
    let mut m = Member::new();
    for cmd in tour() {
        m.ok(cmd);
    }
    let again = AuthStore::open(m.storage.clone()).unwrap();
    assert_eq!(*again.read(), *m.auth.read());
    m.auth.reload().unwrap();
    assert!(m.auth.is_enabled());
    assert_eq!(m.auth.user_roles("alice").unwrap(), vec!["ro".to_string()]);
}

#[test]
fn revisions_follow_etcd() {
    let mut m = Member::new();
    // etcd starts at 1; every change moves it, enable does not, a repeated grant does not.
    assert_eq!(m.auth.status(), (false, 1));
    assert_eq!(m.apply(enable()), Err(Error::RootUserNotExist));
    m.ok(role_add("root"));
    m.ok(grant("root", PermType::Readwrite, "foo", ""));
    m.ok(user_add("root"));
    assert_eq!(m.apply(enable()), Err(Error::RootRoleNotExist));
    m.ok(grant_role("root", "root"));
    m.ok(grant_role("root", "root"));
    m.ok(enable());
    m.ok(enable());
    assert_eq!(m.auth.status(), (true, 5));
    m.ok(Cmd::AuthDisable(AuthDisableRequest {}));
    m.ok(Cmd::AuthDisable(AuthDisableRequest {}));
    assert_eq!(m.auth.status(), (false, 6));
}

#[test]
fn management_errors_are_etcds() {
    let mut m = Member::new();
    m.ok(user_add("root"));
    m.ok(grant_role("root", "root"));
    m.ok(enable());
    assert_eq!(m.apply(user_add("root")), Err(Error::UserAlreadyExist));
    assert_eq!(m.apply(user_add("")), Err(Error::UserEmpty));
    assert_eq!(m.apply(role_add("")), Err(Error::RoleEmpty));
    m.ok(role_add("ro"));
    assert_eq!(m.apply(role_add("ro")), Err(Error::RoleAlreadyExist));
    assert_eq!(m.apply(grant_role("nobody", "ro")), Err(Error::UserNotFound));
    assert_eq!(m.apply(grant_role("root", "nosuch")), Err(Error::RoleNotFound));
    assert_eq!(m.apply(grant("nosuch", PermType::Read, "a", "")), Err(Error::RoleNotFound));
    let no_perm = Cmd::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest {
        name: "ro".into(),
        perm: None,
    });
    assert_eq!(m.apply(no_perm), Err(Error::PermissionNotGiven));
    let revoke_perm = Cmd::AuthRoleRevokePermission(AuthRoleRevokePermissionRequest {
        role: "ro".into(),
        key: b"a".to_vec(),
        range_end: Vec::new(),
    });
    assert_eq!(m.apply(revoke_perm), Err(Error::PermissionNotGranted));
    let revoke = |name: &str, role: &str| {
        Cmd::AuthUserRevokeRole(AuthUserRevokeRoleRequest { name: name.into(), role: role.into() })
    };
    assert_eq!(m.apply(revoke("root", "ro")), Err(Error::RoleNotGranted));
    // Auth must stay manageable while enabled.
    assert_eq!(m.apply(revoke("root", "root")), Err(Error::InvalidAuthMgmt));
    let del_root = Cmd::AuthUserDelete(AuthUserDeleteRequest { name: "root".into() });
    assert_eq!(m.apply(del_root.clone()), Err(Error::InvalidAuthMgmt));
    let del_root_role = Cmd::AuthRoleDelete(AuthRoleDeleteRequest { role: "root".into() });
    assert_eq!(m.apply(del_root_role), Err(Error::InvalidAuthMgmt));
    let before = m.rows();
    let revision = m.auth.revision();
    assert!(m.apply(role_add("ro")).is_err());
    assert_eq!(
        (m.rows(), m.auth.revision()),
        (before, revision),
        "a refused command changes nothing"
    );
    // Once disabled, root can go.
    m.ok(Cmd::AuthDisable(AuthDisableRequest {}));
    m.ok(revoke("root", "root"));
    m.ok(del_root);
    assert_eq!(m.auth.user_names(), Vec::<String>::new());
}

#[test]
fn role_delete_revokes_it_from_users() {
    let mut m = Member::new();
    m.ok(role_add("ro"));
    m.ok(role_add("rw"));
    m.ok(user_add("alice"));
    m.ok(grant_role("alice", "rw"));
    m.ok(grant_role("alice", "ro"));
    assert_eq!(m.auth.user_roles("alice").unwrap(), vec!["ro".to_string(), "rw".to_string()]);
    m.ok(Cmd::AuthRoleDelete(AuthRoleDeleteRequest { role: "ro".into() }));
    assert_eq!(m.auth.user_roles("alice").unwrap(), vec!["rw".to_string()]);
    assert_eq!(m.auth.role_names(), vec!["rw".to_string()]);
    assert_eq!(m.auth.role_permissions("ro"), Err(Error::RoleNotFound));
}

#[test]
fn granting_the_same_range_again_changes_its_type() {
    let mut m = Member::new();
    m.ok(role_add("r"));
    m.ok(grant("r", PermType::Read, "b", ""));
    m.ok(grant("r", PermType::Read, "a", "c"));
    m.ok(grant("r", PermType::Write, "b", ""));
    let perms = m.auth.role_permissions("r").unwrap();
    let keys: Vec<(&[u8], i32)> = perms.iter().map(|p| (p.key.as_slice(), p.perm_type)).collect();
    assert_eq!(keys, vec![(&b"a"[..], PermType::Read as i32), (&b"b"[..], PermType::Write as i32)]);
}

#[test]
fn permission_checks_follow_etcd() {
    let mut m = Member::new();
    for cmd in tour() {
        m.ok(cmd);
    }
    let alice = caller(&m, "alice");
    let root = caller(&m, "root");
    assert_eq!(m.auth.check_range(&alice, b"foo", b""), Ok(()));
    assert_eq!(m.auth.check_write(&alice, b"foo", b""), Err(Error::PermissionDenied));
    assert_eq!(m.auth.check_range(&alice, b"pre/", b"pre0"), Ok(()));
    assert_eq!(m.auth.check_range(&alice, b"p", b"q"), Err(Error::PermissionDenied));
    assert_eq!(m.auth.check_write(&alice, b"zzzz", b""), Ok(()));
    assert_eq!(m.auth.check_range(&alice, b"\0", b"\0"), Err(Error::PermissionDenied));
    // The root role needs no permissions.
    assert_eq!(m.auth.check_write(&root, b"\0", b"\0"), Ok(()));
    assert_eq!(m.auth.check_admin(&root), Ok(()));
    assert_eq!(m.auth.check_admin(&alice), Err(Error::PermissionDenied));
    assert_eq!(m.auth.check_admin(&AuthInfo::default()), Err(Error::UserEmpty));
    let ghost = AuthInfo { user: "ghost".into(), revision: m.auth.revision() };
    assert_eq!(m.auth.check_admin(&ghost), Err(Error::UserNotFound));
    assert_eq!(m.auth.check_range(&ghost, b"foo", b""), Err(Error::PermissionDenied));
    // No token: no user.
    assert_eq!(m.auth.check_range(&AuthInfo::default(), b"foo", b""), Err(Error::UserEmpty));
    assert_eq!(m.auth.require_user(&AuthInfo::default()), Err(Error::UserEmpty));
    // A txn needs every part: compares and ranges READ, puts WRITE, on both branches.
    let range = |k: &str| RequestOp {
        request: Some(Op::RequestRange(RangeRequest { key: k.into(), ..Default::default() })),
    };
    let txn = TxnRequest {
        success: vec![range("foo")],
        failure: vec![range("zzz")],
        ..Default::default()
    };
    assert_eq!(m.auth.check_txn(&alice, &txn), Ok(()));
    let txn = TxnRequest {
        success: vec![range("foo")],
        failure: vec![range("bar")],
        ..Default::default()
    };
    assert_eq!(m.auth.check_txn(&alice, &txn), Err(Error::PermissionDenied));
    // A change to the auth store makes earlier authorizations stale.
    m.ok(role_add("other"));
    assert_eq!(m.auth.check_range(&alice, b"foo", b""), Err(Error::AuthOldRevision));
    assert_eq!(m.auth.check_unchanged(&alice), Err(Error::AuthOldRevision));
    // Disabled: everything is allowed.
    m.ok(Cmd::AuthDisable(AuthDisableRequest {}));
    assert_eq!(m.auth.check_write(&AuthInfo::default(), b"x", b""), Ok(()));
    assert_eq!(m.auth.check_admin(&AuthInfo::default()), Ok(()));
}

#[test]
fn passwords_and_tokens() {
    let mut m = Member::new();
    m.ok(user_add("root"));
    m.ok(grant_role("root", "root"));
    assert_eq!(m.auth.check_password("root", "123"), Err(Error::AuthNotEnabled));
    m.ok(enable());
    assert_eq!(m.auth.check_password("root", "123"), Ok(m.auth.revision()));
    assert_eq!(m.auth.check_password("root", "124"), Err(Error::AuthFailed));
    assert_eq!(m.auth.check_password("nobody", "123"), Err(Error::AuthFailed));
    m.ok(Cmd::AuthUserAdd(AuthUserAddRequest {
        name: "bob".into(),
        options: Some(UserAddOptions { no_password: true }),
        ..Default::default()
    }));
    assert_eq!(m.auth.check_password("bob", "x"), Err(Error::NoPasswordUser));

    let out = m
        .ok(Cmd::Authenticate(AuthenticateCommand { name: "root".into(), token: "prefix".into() }));
    let Out::Authenticate(resp) = out else { panic!("{out:?}") };
    assert_eq!(resp.token, format!("prefix.{}", m.index));
    let mut md = MetadataMap::new();
    md.insert("token", resp.token.parse().unwrap());
    assert_eq!(m.auth.check_watch(&md, b"", b"\0"), Ok(()));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let info = rt.block_on(m.auth.user_from(&md)).unwrap();
    assert_eq!(info, AuthInfo { user: "root".into(), revision: m.auth.revision() });
    assert_eq!(rt.block_on(m.auth.user_from(&MetadataMap::new())), Ok(AuthInfo::default()));
    let mut bad = MetadataMap::new();
    bad.insert("token", "nope.1".parse().unwrap());
    assert_eq!(rt.block_on(m.auth.user_from(&bad)), Err(Error::InvalidAuthToken));
    bad.insert("token", "garbage".parse().unwrap());
    assert_eq!(rt.block_on(m.auth.user_from(&bad)), Err(Error::InvalidAuthToken));
    assert_eq!(m.auth.check_watch(&MetadataMap::new(), b"a", b""), Err(Error::UserEmpty));
    // No-password users cannot get a token; changing a password ends a user's tokens.
    let bob = Cmd::Authenticate(AuthenticateCommand { name: "bob".into(), token: "p".into() });
    assert_eq!(m.apply(bob), Err(Error::AuthFailed));
    m.ok(Cmd::AuthUserChangePassword(AuthUserChangePasswordRequest {
        name: "root".into(),
        hashed_password: hashed("123"),
        ..Default::default()
    }));
    assert_eq!(rt.block_on(m.auth.user_from(&md)), Err(Error::InvalidAuthToken));
    // A plain password in an entry is refused: apply never hashes.
    let plain = Cmd::AuthUserAdd(AuthUserAddRequest {
        name: "carol".into(),
        password: "pw".into(),
        ..Default::default()
    });
    assert_eq!(m.apply(plain), Err(Error::NoPasswordUser));
}

#[test]
fn untranslated_errors_read_as_etcds() {
    assert_eq!(untranslated(Error::PermissionDenied).to_string(), "auth: permission denied");
    assert_eq!(untranslated(Error::UserEmpty).to_string(), "auth: user name is empty");
    assert_eq!(untranslated(Error::AuthFailed), Error::AuthFailed);
}
