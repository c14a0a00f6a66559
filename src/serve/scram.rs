//! SCRAM-SHA-256 (RFC 5802, RFC 7677) for PostgreSQL logins: the password never crosses the
//! wire, and the server keeps only PostgreSQL's verifier (`StoredKey`, `ServerKey`), which
//! cannot be used to log in. pgwire's own SCRAM wants the salted password itself, which
//! would let anyone who reads `auth.toml` log in, so the exchange is here.
//!
//! No channel binding (`SCRAM-SHA-256-PLUS`): clients that offer it over TLS fall back to
//! plain SCRAM, as with a PostgreSQL server that does not advertise it.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ring::{digest, hmac, pbkdf2};

/// PostgreSQL's default iteration count (`scram_iterations`).
pub const ITERATIONS: u32 = 4096;

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as `pg_authid` stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// Equal bytes, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

impl Verifier {
    /// The verifier of `password` with a fresh random salt.
    pub fn new(password: &str) -> Self {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut salt = vec![0u8; 16];
        OsRng.fill_bytes(&mut salt);
        Self::with_salt(password, salt, ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> Self {
        // SASLprep, as PostgreSQL: a password it cannot normalize is used as it is.
        let normalized = stringprep::saslprep(password)
            .map(|p| p.into_owned())
            .unwrap_or_else(|_| password.to_string());
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(iterations.max(1)).expect("at least one"),
            &salt,
            normalized.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        Verifier {
            iterations,
            salt,
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// A verifier no password matches: unknown users go through the same exchange.
    pub fn impossible() -> Self {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut bytes = vec![0u8; 16 + 32 + 32];
        OsRng.fill_bytes(&mut bytes);
        Verifier {
            iterations: ITERATIONS,
            salt: bytes[..16].to_vec(),
            stored_key: bytes[16..48].to_vec(),
            server_key: bytes[48..].to_vec(),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(Verifier {
            iterations: iterations.parse().ok()?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?,
            server_key: B64.decode(server).ok()?,
        })
    }
}

impl std::fmt::Display for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }
}

/// An exchange waiting for the client's final message.
#[derive(Debug)]
pub struct Exchange {
    verifier: Verifier,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
}

fn attribute(message: &str, key: char) -> Option<&str> {
    message
        .split(',')
        .find_map(|part| part.strip_prefix(key).and_then(|p| p.strip_prefix('=')))
}

/// The reason an exchange failed (logged; the client is told only that the password failed).
pub type Refusal = &'static str;

impl Exchange {
    /// The client's first message (`n,,n=user,r=nonce`); the server's first message to send.
    pub fn start(verifier: Verifier, client_first: &[u8]) -> Result<(Self, String), Refusal> {
        let text = std::str::from_utf8(client_first).map_err(|_| "client-first is not UTF-8")?;
        // gs2 header: "n,," (no channel binding) or "y,," (client could, server does not).
        let (gs2_header, bare) = match text.get(..3) {
            Some("n,,") | Some("y,,") => (&text[..3], &text[3..]),
            _ if text.starts_with("p=") => return Err("channel binding is not offered"),
            _ => return Err("client-first has no gs2 header"),
        };
        let client_nonce = attribute(bare, 'r').ok_or("client-first has no nonce")?;
        if client_nonce.is_empty() || client_nonce.contains(',') {
            return Err("client nonce is empty");
        }
        let mut random = [0u8; 18];
        {
            use argon2::password_hash::rand_core::{OsRng, RngCore};
            OsRng.fill_bytes(&mut random);
        }
        let nonce = format!("{client_nonce}{}", B64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        Ok((
            Exchange {
                verifier,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
                gs2_header: gs2_header.to_string(),
            },
            server_first,
        ))
    }

    /// The client's final message (`c=…,r=…,p=proof`); the server's final message when the
    /// proof shows the client knows the password.
    pub fn finish(&self, client_final: &[u8]) -> Result<String, Refusal> {
        let text = std::str::from_utf8(client_final).map_err(|_| "client-final is not UTF-8")?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or("client-final has no proof")?;
        let binding = attribute(without_proof, 'c').ok_or("client-final has no binding")?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err("channel binding does not match");
        }
        if attribute(without_proof, 'r') != Some(self.nonce.as_str()) {
            return Err("nonce does not match");
        }
        let proof = B64.decode(proof).map_err(|_| "proof is not base64")?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err("proof has the wrong length");
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let stored = sha256(&client_key);
        if !same(&stored, &self.verifier.stored_key) {
            return Err("wrong password");
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (user "user", password "pencil").
    #[test]
    fn rfc7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = Verifier::with_salt("pencil", salt, 4096);
        let client_first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
        let (mut exchange, _) = Exchange::start(verifier, client_first).unwrap();
        // Replay the RFC's server nonce instead of a random one.
        exchange.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        exchange.server_first = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", exchange.nonce);
        let server_final = exchange
            .finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(
            server_final,
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let wrong = exchange.finish(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=AAAAZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert_eq!(wrong, Err("wrong password"));
    }

    #[test]
    fn verifier_round_trips() {
        let v = Verifier::new("s3cret");
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        assert_eq!(Verifier::parse(&text), Some(v));
        assert_eq!(Verifier::parse("$argon2id$v=19$m=1"), None);
    }
}
