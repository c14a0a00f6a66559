//! Who may connect to `panorama serve`: users with passwords (PostgreSQL wire) and bearer
//! tokens (Flight SQL and HTTP), kept hashed in `.panorama/auth.toml`, outside the config in
//! git. Passwords are Argon2id hashes; tokens are random and stored as SHA-256.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Error, Result};

/// What a user or token may do. Both query read-only; an admin may also start runs, refreshes
/// and exports over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Reader,
    Admin,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Argon2id in PHC form (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// PostgreSQL's SCRAM-SHA-256 verifier (`SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`),
    /// for logins where the password never crosses the wire. Users set before it existed
    /// have none and log in with the cleartext password message until their password is set
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scram: Option<String>,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub sha256: String,
    pub role: Role,
    pub created_at: String,
}

/// The contents of `auth.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(default)]
    pub users: BTreeMap<String, UserEntry>,
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenEntry>,
    /// Keys that may only send events (`POST /api/events`): public in a web page, so they
    /// read nothing.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub write_keys: BTreeMap<String, WriteKeyEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteKeyEntry {
    pub sha256: String,
    pub created_at: String,
}

/// Where a project's credentials live.
pub fn path(workspace_dir: &Path) -> PathBuf {
    workspace_dir.join("auth.toml")
}

impl AuthFile {
    pub fn load(workspace_dir: &Path) -> Result<Self> {
        let p = path(workspace_dir);
        match std::fs::read_to_string(&p) {
            Ok(text) => toml::from_str(&text).map_err(|e| Error::File {
                path: p.clone(),
                message: e.message().trim().to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io("cannot read", &p, e)),
        }
    }

    pub fn save(&self, workspace_dir: &Path) -> Result<()> {
        let text = toml::to_string(self).map_err(|e| Error::Internal(e.to_string()))?;
        let p = path(workspace_dir);
        crate::workspace::write_atomic(&p, text.as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| Error::io("cannot restrict", &p, e))?;
        }
        Ok(())
    }

    /// True when connecting needs credentials (write keys read nothing, so they do not count).
    pub fn is_configured(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// A new write key for `name`, returned once (`pwk_…`); only its hash is kept.
    pub fn create_write_key(&mut self, name: &str) -> Result<String> {
        check_name(name)?;
        if self.write_keys.contains_key(name) {
            return Err(Error::Conflict(format!(
                "a write key named {name} exists: revoke it first (`panorama write-keys revoke {name}`)"
            )));
        }
        let key = new_secret("pwk_");
        self.write_keys.insert(
            name.to_string(),
            WriteKeyEntry {
                sha256: token_hash(&key),
                created_at: chrono::Utc::now().to_rfc3339(),
            },
        );
        Ok(key)
    }

    pub fn set_user(&mut self, name: &str, password: &str, role: Role) -> Result<()> {
        check_name(name)?;
        if password.len() < 8 {
            return Err(Error::InvalidRequest(
                "a password needs at least 8 characters".into(),
            ));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| Error::Internal(format!("cannot hash the password: {e}")))?
            .to_string();
        self.users.insert(
            name.to_string(),
            UserEntry {
                password_hash: hash,
                scram: Some(super::scram::Verifier::new(password).to_string()),
                role,
            },
        );
        Ok(())
    }

    /// A new token for `name`; the token itself is returned once and never stored.
    pub fn create_token(&mut self, name: &str, role: Role) -> Result<String> {
        check_name(name)?;
        if self.tokens.contains_key(name) {
            return Err(Error::Conflict(format!(
                "a token named {name} exists: revoke it first (`panorama tokens revoke {name}`)"
            )));
        }
        let token = new_secret("pan_");
        self.tokens.insert(
            name.to_string(),
            TokenEntry {
                sha256: token_hash(&token),
                role,
                created_at: chrono::Utc::now().to_rfc3339(),
            },
        );
        Ok(token)
    }
}

/// 24 random bytes in hex after `prefix` (`pan_` tokens, `pwk_` write keys).
fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", crate::output::hex(&bytes))
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
    {
        return Err(Error::InvalidRequest(format!(
            "{name:?}: names are letters, digits, '_', '-' and '.'"
        )));
    }
    Ok(())
}

fn token_hash(token: &str) -> String {
    crate::output::hex(&sha2::Sha256::digest(token.as_bytes()))
}

/// Credentials as the server checks them.
#[derive(Debug, Default)]
pub struct Credentials {
    users: HashMap<String, UserEntry>,
    tokens: HashMap<String, (String, Role)>,
    /// Write key hash → name.
    write_keys: HashMap<String, String>,
    /// Recent failed logins, per user and per client address.
    pub failures: Failures,
    /// The card's signed-in browsers: session id → who.
    pub sessions: Sessions,
}

/// Failed logins allowed per key (a user, a client address) within [`FAILURE_WINDOW`]; past
/// them, that key's attempts are refused unchecked until the window since its first failure
/// ends. 10 a minute leaves a person mistyping room; a guesser gets 14,400 tries a day
/// instead of the 50 a second measured before.
pub const MAX_FAILURES: u32 = 10;
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Keys kept at most; beyond it, expired ones are dropped (a flood from many addresses
/// cannot grow the map without bound).
const MAX_FAILURE_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Failures {
    map: std::sync::Mutex<HashMap<String, (u32, std::time::Instant)>>,
}

impl Failures {
    /// How long `key` must wait, when it has failed too often.
    pub fn blocked(&self, key: &str) -> Option<std::time::Duration> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let (n, since) = map.get(key)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*n >= MAX_FAILURES).then_some(left)
    }

    pub fn failed(&self, key: &str) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_FAILURE_KEYS {
            map.retain(|_, (_, since)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = map
            .entry(key.to_string())
            .or_insert((0, std::time::Instant::now()));
        if entry.1.elapsed() >= FAILURE_WINDOW {
            *entry = (0, std::time::Instant::now());
        }
        entry.0 += 1;
    }
}

/// How long a card session lasts.
pub const SESSION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// Signed-in browsers: the cookie holds a random session id, never the token itself.
#[derive(Debug, Default)]
pub struct Sessions {
    map: std::sync::Mutex<HashMap<String, (Principal, std::time::Instant)>>,
}

impl Sessions {
    pub fn create(&self, who: Principal) -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, at)| at.elapsed() < SESSION_LIFETIME);
        map.insert(id.clone(), (who, std::time::Instant::now()));
        id
    }

    pub fn get(&self, id: &str) -> Option<Principal> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id)
            .filter(|(_, at)| at.elapsed() < SESSION_LIFETIME)
            .map(|(p, _)| p.clone())
    }
}

/// An Argon2 hash checked for unknown users, so that a wrong user name takes as long as a
/// wrong password (0.4 ms against 12.8 ms told which names exist).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no such user", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Who a request or connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Credentials {
    pub fn new(file: &AuthFile) -> Self {
        Credentials {
            users: file.users.clone().into_iter().collect(),
            tokens: file
                .tokens
                .iter()
                .map(|(name, t)| (t.sha256.clone(), (name.clone(), t.role)))
                .collect(),
            write_keys: file
                .write_keys
                .iter()
                .map(|(name, k)| (k.sha256.clone(), name.clone()))
                .collect(),
            failures: Failures::default(),
            sessions: Sessions::default(),
        }
    }

    /// True when connecting needs credentials.
    pub fn required(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// How a PostgreSQL login for `user` proves its password: SCRAM with the user's verifier,
    /// or with one no password matches when there is no such user (so that a wrong name
    /// looks like a wrong password); `None`: the user predates SCRAM and sends it in clear.
    pub fn scram_verifier(&self, user: &str) -> Option<super::scram::Verifier> {
        match self.users.get(user) {
            None => Some(super::scram::Verifier::impossible()),
            Some(entry) => entry
                .scram
                .as_deref()
                .and_then(super::scram::Verifier::parse),
        }
    }

    /// The user a completed SCRAM exchange logged in.
    pub fn user(&self, user: &str) -> Option<Principal> {
        self.users.get(user).map(|entry| Principal {
            name: user.to_string(),
            role: entry.role,
        })
    }

    /// A user by password (PostgreSQL wire).
    pub fn password(&self, user: &str, password: &str) -> Option<Principal> {
        let Some(entry) = self.users.get(user) else {
            if let Ok(hash) = PasswordHash::new(dummy_hash()) {
                let _ = Argon2::default().verify_password(password.as_bytes(), &hash);
            }
            return None;
        };
        let hash = PasswordHash::new(&entry.password_hash).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .ok()?;
        Some(Principal {
            name: user.to_string(),
            role: entry.role,
        })
    }

    /// A bearer token (Flight SQL, HTTP).
    pub fn token(&self, token: &str) -> Option<Principal> {
        self.tokens
            .get(&token_hash(token.trim()))
            .map(|(name, role)| Principal {
                name: name.clone(),
                role: *role,
            })
    }

    /// The name of a write key.
    pub fn write_key(&self, key: &str) -> Option<&str> {
        self.write_keys
            .get(&token_hash(key.trim()))
            .map(String::as_str)
    }

    /// True when sending events needs a key: some credential of any kind exists.
    pub fn events_need_key(&self) -> bool {
        self.required() || !self.write_keys.is_empty()
    }

    /// The principal of an `Authorization` header value, when credentials are required;
    /// an anonymous admin when they are not (the server then only listens on loopback).
    pub fn authorize(&self, header: Option<&str>) -> std::result::Result<Principal, &'static str> {
        if !self.required() {
            return Ok(Principal {
                name: "anonymous".into(),
                role: Role::Admin,
            });
        }
        let header =
            header.ok_or("authentication required: send `Authorization: Bearer <token>`")?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or("the Authorization header must be `Bearer <token>`")?;
        self.token(token).ok_or("invalid token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_tokens_round_trip_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = AuthFile::default();
        f.set_user("ana", "correct horse", Role::Reader).unwrap();
        let token = f.create_token("etl", Role::Admin).unwrap();
        f.save(dir.path()).unwrap();
        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(!text.contains("correct horse") && !text.contains(&token));
        let creds = Credentials::new(&AuthFile::load(dir.path()).unwrap());
        assert_eq!(
            creds.password("ana", "correct horse").unwrap().role,
            Role::Reader
        );
        assert!(creds.password("ana", "wrong horse!").is_none());
        assert!(creds.password("bob", "correct horse").is_none());
        assert_eq!(
            creds
                .authorize(Some(&format!("Bearer {token}")))
                .unwrap()
                .role,
            Role::Admin
        );
        assert!(creds.authorize(Some("Bearer pan_nope")).is_err());
        assert!(creds.authorize(None).is_err());
        assert!(f.set_user("x y", "longenough", Role::Reader).is_err());
        // A write key sends events and reads nothing.
        let key = f.create_write_key("site").unwrap();
        let creds = Credentials::new(&f);
        assert_eq!(creds.write_key(&key), Some("site"));
        assert!(creds.authorize(Some(&format!("Bearer {key}"))).is_err());
        assert!(creds.token(&key).is_none());
        assert!(f.set_user("short", "abc", Role::Reader).is_err());
    }
}
