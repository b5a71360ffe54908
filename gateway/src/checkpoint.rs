//! Audit checkpoints: the head of every audit chain, signed with a key the database never
//! sees and written outside it, so that cutting the newest records of a chain (which leaves
//! a shorter chain that still links) is detected by `fhirgate audit verify`.
//!
//! A checkpoint is a JWT signed with Ed25519 (EdDSA) whose claims hold the heads and the
//! time. The private key (a 32-byte seed, hex) stays in its file; its public half is written
//! beside it (`<key>.pub`, hex) for whoever verifies without being able to sign. A
//! checkpoint of an older release (HS256 with the same key file) is still verified. A new
//! checkpoint replaces the last one only if the last one still holds: a cut chain is never
//! laundered into a fresh checkpoint.

use std::path::{Path, PathBuf};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use store::audit::ChainHead;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The checkpoint's signature or content is not valid.
    #[error("the audit checkpoint {0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Where checkpoints go and the key that signs them.
#[derive(Clone)]
pub struct Checkpoints {
    /// The folder of `latest.jwt`.
    pub dir: PathBuf,
    /// The Ed25519 seed (also the HMAC key of older HS256 checkpoints).
    key: Vec<u8>,
    /// The Ed25519 public key.
    public: [u8; 32],
}

/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): the fixed prefix, then the 32 bytes.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// When it was taken (seconds since the epoch).
    iat: i64,
    heads: Vec<ChainHead>,
}

/// What `verify` found.
#[derive(Debug)]
pub enum Verdict {
    /// No checkpoint has been written yet.
    None,
    /// The checkpoint of this time (seconds since the epoch) holds.
    Holds(i64),
    /// A checkpointed record is gone or changed.
    Broken(store::BrokenLink),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let what = what.into();
    move |source| CheckpointError::Io { what, source }
}

impl Checkpoints {
    /// Checkpoints in `dir`, signed with the key in `key_file` (created, mode 0600, when
    /// `create` is set and it does not exist).
    pub fn open(dir: &Path, key_file: &Path, create: bool) -> Result<Checkpoints, CheckpointError> {
        let key = match std::fs::read_to_string(key_file) {
            Ok(text) => hex::decode(text.trim()).map_err(|e| {
                CheckpointError::Invalid(format!("key {} is not hex: {e}", key_file.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let key: [u8; 32] = rand::random();
                if let Some(parent) = key_file.parent() {
                    std::fs::create_dir_all(parent).map_err(io("creating the key folder"))?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(key_file)
                    .map_err(io(format!("creating {}", key_file.display())))?;
                file.write_all(hex::encode(key).as_bytes())
                    .map_err(io(format!("writing {}", key_file.display())))?;
                key.to_vec()
            }
            Err(e) => return Err(io(format!("reading {}", key_file.display()))(e)),
        };
        let seed: [u8; 32] = key.as_slice().try_into().map_err(|_| {
            CheckpointError::Invalid(format!("key {} is not 32 bytes", key_file.display()))
        })?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let mut pub_file = key_file.as_os_str().to_owned();
        pub_file.push(".pub");
        let pub_file = PathBuf::from(pub_file);
        if !pub_file.exists()
            && let Err(e) = std::fs::write(&pub_file, hex::encode(public))
        {
            tracing::warn!(file = %pub_file.display(), error = %e, "writing the checkpoint public key");
        }
        Ok(Checkpoints {
            dir: dir.to_owned(),
            key,
            public,
        })
    }

    fn latest(&self) -> PathBuf {
        self.dir.join("latest.jwt")
    }

    /// The heads and time of the latest checkpoint, if there is one.
    fn read(&self) -> Result<Option<Claims>, CheckpointError> {
        let text = match std::fs::read_to_string(self.latest()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("reading {}", self.latest().display()))(e)),
        };
        let invalid = |e: jsonwebtoken::errors::Error| {
            CheckpointError::Invalid(format!("signature or content invalid: {e}"))
        };
        // The key, and so the algorithm, is ours to pick: the header only tells an older
        // release's checkpoint (HS256) from ours, and each is checked with its own key.
        let alg = jsonwebtoken::decode_header(text.trim())
            .map_err(invalid)?
            .alg;
        let (alg, key) = match alg {
            Algorithm::HS256 => (Algorithm::HS256, DecodingKey::from_secret(&self.key)),
            _ => (Algorithm::EdDSA, DecodingKey::from_ed_der(&self.public)),
        };
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_required_spec_claims(&["iat"]);
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<Claims>(text.trim(), &key, &validation).map_err(invalid)?;
        Ok(Some(data.claims))
    }

    /// Checks the latest checkpoint against the store.
    pub async fn verify(&self, store: &store::Store) -> Result<Verdict, CheckpointError> {
        let Some(claims) = self.read()? else {
            return Ok(Verdict::None);
        };
        Ok(match store.check_audit_checkpoint(&claims.heads).await? {
            Ok(()) => Verdict::Holds(claims.iat),
            Err(broken) => Verdict::Broken(broken),
        })
    }

    /// Writes a checkpoint of the current heads, unless the last one no longer holds.
    pub async fn write(&self, store: &store::Store) -> Result<(), CheckpointError> {
        if let Verdict::Broken(broken) = self.verify(store).await? {
            return Err(CheckpointError::Invalid(format!(
                "no longer holds ({broken}); not replaced"
            )));
        }
        let claims = Claims {
            iat: chrono::Utc::now().timestamp(),
            heads: store.audit_heads().await?,
        };
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.key);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(&der),
        )
        .map_err(|e| CheckpointError::Invalid(format!("cannot be signed: {e}")))?;
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let tmp = self.dir.join("latest.jwt.tmp");
        std::fs::write(&tmp, token).map_err(io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, self.latest())
            .map_err(io(format!("replacing {}", self.latest().display())))?;
        Ok(())
    }

    /// Writes a checkpoint every `every` until the store closes.
    pub fn spawn(self, store: store::Store, every: std::time::Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if store.is_closed() {
                    break;
                }
                if let Err(e) = self.write(&store).await {
                    tracing::error!(error = %e, "audit checkpoint");
                }
            }
        });
    }
}
