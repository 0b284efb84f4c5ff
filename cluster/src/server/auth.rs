//! Roles and authentication: trust for password-less roles on loopback, SCRAM-SHA-256 for
//! roles with a password.
//!
//! Roles live in `users.conf` in the data directory, one per line, `name:` (no password) or
//! `name:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (PostgreSQL's verifier
//! format, base64 fields), so the server never keeps a password or anything that can log in
//! without it. The superuser `postgres` always exists. `strata serve --user NAME:PASSWORD`
//! creates or updates a role at start.
//!
//! The SCRAM exchange itself is pgwire's `ScramServerAuth` state machine; this module only
//! supplies the verifier and turns a failure into PostgreSQL's FATAL 28P01.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use pgwire::api::auth::sasl::scram::{
    gen_salted_password, ScramSecret, ScramServerAuth, ScramServerAuthWaitingForClientFinal,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};

/// SCRAM iteration count for new verifiers (PostgreSQL's default).
const SCRAM_ITERATIONS: usize = 4096;
const USERS_FILE: &str = "users.conf";

/// How a role proves who it is.
#[derive(Clone, Debug)]
pub enum Credential {
    /// No password: trusted on loopback only.
    NoPassword,
    /// A SCRAM-SHA-256 verifier, in PostgreSQL's text form.
    Scram(String),
}

/// The roles of a server.
#[derive(Debug)]
pub struct Users {
    roles: RwLock<HashMap<String, Credential>>,
    path: Option<PathBuf>,
}

fn verifier_text(secret: &ScramSecret) -> Option<String> {
    match secret {
        ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } => Some(format!(
            "SCRAM-SHA-256${iterations}:{}${}:{}",
            STANDARD.encode(salt),
            STANDARD.encode(stored_key),
            STANDARD.encode(server_key)
        )),
        _ => None,
    }
}

fn parse_verifier(text: &str) -> Option<ScramSecret> {
    let rest = text.strip_prefix("SCRAM-SHA-256$")?;
    let (iter_salt, keys) = rest.split_once('$')?;
    let (iterations, salt) = iter_salt.split_once(':')?;
    let (stored, server) = keys.split_once(':')?;
    Some(ScramSecret::Verifier {
        salt: STANDARD.decode(salt).ok()?,
        iterations: iterations.parse().ok()?,
        stored_key: STANDARD.decode(stored).ok()?,
        server_key: STANDARD.decode(server).ok()?,
    })
}

/// A SCRAM-SHA-256 verifier for a password, with a fresh random salt.
pub fn make_verifier(password: &str) -> ScramSecret {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
    ScramSecret::verifier_from_salted_password(salt.to_vec(), salted, SCRAM_ITERATIONS)
}

impl Users {
    /// Loads `users.conf` from the data directory (absent: only `postgres`, no password).
    pub fn load(dir: Option<&Path>) -> io::Result<Users> {
        let mut roles = HashMap::new();
        roles.insert("postgres".to_string(), Credential::NoPassword);
        let path = dir.map(|d| d.join(USERS_FILE));
        if let Some(p) = &path {
            if p.exists() {
                for (n, line) in std::fs::read_to_string(p)?.lines().enumerate() {
                    let line = line.trim();
                    if line.is_empty() || line.starts_with('#') {
                        continue;
                    }
                    let (name, secret) = line.split_once(':').ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}:{}: expected NAME:VERIFIER", p.display(), n + 1),
                        )
                    })?;
                    let cred = if secret.is_empty() {
                        Credential::NoPassword
                    } else {
                        if parse_verifier(secret).is_none() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("{}:{}: bad SCRAM verifier", p.display(), n + 1),
                            ));
                        }
                        Credential::Scram(secret.to_string())
                    };
                    roles.insert(name.to_string(), cred);
                }
            }
        }
        Ok(Users {
            roles: RwLock::new(roles),
            path,
        })
    }

    /// The credential of a role, if it exists.
    pub fn credential(&self, user: &str) -> Option<Credential> {
        self.roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
    }

    /// Creates or updates a role (None: no password) and saves the role file.
    pub fn set(&self, user: &str, password: Option<&str>) -> io::Result<()> {
        let cred = match password {
            Some(p) => Credential::Scram(verifier_text(&make_verifier(p)).unwrap_or_default()),
            None => Credential::NoPassword,
        };
        let mut roles = self.roles.write().unwrap_or_else(|e| e.into_inner());
        roles.insert(user.to_string(), cred);
        Self::save(&self.path, &roles)
    }

    /// Removes a role (never `postgres`); false if it did not exist.
    pub fn remove(&self, user: &str) -> io::Result<bool> {
        let mut roles = self.roles.write().unwrap_or_else(|e| e.into_inner());
        if user == "postgres" || roles.remove(user).is_none() {
            return Ok(false);
        }
        Self::save(&self.path, &roles).map(|_| true)
    }

    fn save(path: &Option<PathBuf>, roles: &HashMap<String, Credential>) -> io::Result<()> {
        if let Some(path) = path {
            let mut names: Vec<&String> = roles.keys().collect();
            names.sort();
            let mut text =
                String::from("# Strata roles: NAME:SCRAM verifier (empty: no password)\n");
            for name in names {
                let secret = match &roles[name] {
                    Credential::NoPassword => String::new(),
                    Credential::Scram(s) => s.clone(),
                };
                text.push_str(&format!("{name}:{secret}\n"));
            }
            let tmp = path.with_extension("conf.tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)?;
        }
        Ok(())
    }
}

/// Where a connection is in authentication.
pub enum AuthStage {
    Startup,
    ScramFirst {
        user: String,
        verifier: String,
    },
    ScramFinal {
        user: String,
        waiting: Box<ScramServerAuthWaitingForClientFinal>,
    },
}

/// The result of one authentication message.
pub enum Step {
    Continue(AuthStage, Authentication),
    /// Authenticated as this user; send this reply first.
    Done(String, Authentication),
}

fn auth_failed(user: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        "28P01".to_owned(),
        format!("password authentication failed for user \"{user}\""),
    )))
}

/// Advances the SCRAM exchange by one client message.
pub fn step(stage: AuthStage, msg: PasswordMessageFamily) -> PgWireResult<Step> {
    match stage {
        AuthStage::Startup => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
            "FATAL".to_owned(),
            "08P01".to_owned(),
            "unexpected password message".to_owned(),
        )))),
        AuthStage::ScramFirst { user, verifier } => {
            let secret = parse_verifier(&verifier).ok_or_else(|| auth_failed(&user))?;
            let initial = msg
                .into_sasl_initial_response()
                .map_err(|_| auth_failed(&user))?;
            if initial.auth_method != "SCRAM-SHA-256" {
                return Err(auth_failed(&user));
            }
            let data = initial.data.ok_or_else(|| auth_failed(&user))?;
            let (server_first, waiting) = ScramServerAuth::new()
                .on_client_first_message_with_secret(&data, secret)
                .map_err(|_| auth_failed(&user))?;
            Ok(Step::Continue(
                AuthStage::ScramFinal {
                    user,
                    waiting: Box::new(waiting),
                },
                Authentication::SASLContinue(server_first.into_bytes().into()),
            ))
        }
        AuthStage::ScramFinal { user, waiting } => {
            let response = msg.into_sasl_response().map_err(|_| auth_failed(&user))?;
            match waiting.on_client_final_message(&response.data) {
                Ok(server_final) => Ok(Step::Done(
                    user,
                    Authentication::SASLFinal(server_final.into_bytes().into()),
                )),
                Err(_) => {
                    tracing::warn!(user, "password authentication failed");
                    Err(auth_failed(&user))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_round_trip_through_text() {
        let v = make_verifier("secret");
        let text = verifier_text(&v).expect("verifier");
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        let back = parse_verifier(&text).expect("parses");
        assert_eq!(verifier_text(&back), Some(text));
        assert!(parse_verifier("SCRAM-SHA-256$x").is_none());
    }

    #[test]
    fn roles_persist_in_the_data_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = Users::load(Some(dir.path())).expect("load");
        assert!(matches!(
            users.credential("postgres"),
            Some(Credential::NoPassword)
        ));
        users.set("alice", Some("pw")).expect("set");
        let again = Users::load(Some(dir.path())).expect("reload");
        assert!(matches!(
            again.credential("alice"),
            Some(Credential::Scram(_))
        ));
        assert!(again.credential("bob").is_none());
    }
}
