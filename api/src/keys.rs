//! Ed25519 key pairs in PEM, as `huiyin keygen` writes them: the checkpoint signing pair (or an
//! EdDSA pair for tokens). PKCS#8 for the private key and SubjectPublicKeyInfo for the public
//! one (RFC 8410), which is what `HUIYIN_CHECKPOINT_PRIVATE_KEY` / `…_PUBLIC_KEY` and
//! `HUIYIN_JWT_PRIVATE_KEY` / `…_PUBLIC_KEY` read.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use rand::RngCore;

/// A key pair as PEM text.
#[derive(Debug, Clone)]
pub struct PemPair {
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8).
    pub private: String,
    /// `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    pub public: String,
}

/// The pair of a 32-byte seed.
pub fn ed25519_from_seed(seed: &[u8; 32]) -> PemPair {
    let public = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().to_bytes();
    // RFC 8410: a fixed DER prefix, then the key.
    const PRIVATE_PREFIX: [u8; 16] =
        [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    const PUBLIC_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
    let pem = |label: &str, der: &[u8]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
    };
    PemPair {
        private: pem("PRIVATE KEY", &[&PRIVATE_PREFIX[..], seed].concat()),
        public: pem("PUBLIC KEY", &[&PUBLIC_PREFIX[..], &public].concat()),
    }
}

/// A fresh pair from the operating system's random source.
pub fn generate_ed25519() -> PemPair {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    ed25519_from_seed(&seed)
}

/// Writes a fresh pair: the private key 0600 (on Unix), the public one 0644. Neither file may
/// exist yet (a key is never overwritten: what it signed would no longer verify).
///
/// # Errors
/// Any I/O error, `AlreadyExists` included.
pub fn write_ed25519_pair(private: &Path, public: &Path) -> std::io::Result<()> {
    let pair = generate_ed25519();
    let named = |path: &Path, e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let create = |path: &Path, mode: u32| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        let file = options.open(path).map_err(|e| named(path, e))?;
        // The mode asked for, whatever the umask.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode)).map_err(|e| named(path, e))?;
        Ok::<_, std::io::Error>(file)
    };
    // Both files are created before either is written: a refusal leaves nothing behind.
    let mut public_file = create(public, 0o644)?;
    let mut private_file = match create(private, 0o600) {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_file(public);
            return Err(e);
        }
    };
    private_file.write_all(pair.private.as_bytes())?;
    private_file.sync_all()?;
    public_file.write_all(pair.public.as_bytes())?;
    public_file.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A second review's finding: with the public file already there, keygen refused but left
    /// a new private key behind.
    #[test]
    fn a_refused_keygen_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("huiyin-keygen-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (private, public) = (dir.join("private.pem"), dir.join("public.pem"));
        std::fs::write(&public, "kept").unwrap();
        let err = write_ed25519_pair(&private, &public).unwrap_err();
        assert!(err.to_string().contains("public.pem"), "{err}");
        assert!(!private.exists());
        std::fs::remove_file(&public).unwrap();
        std::fs::write(&private, "kept").unwrap();
        assert!(write_ed25519_pair(&private, &public).is_err());
        assert!(!public.exists(), "the public file created first is removed again");
        assert_eq!(std::fs::read_to_string(&private).unwrap(), "kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// RFC 8032 §7.1, TEST 1: the secret key and the public key it gives.
    #[test]
    fn the_rfc_8032_test_vector_gives_its_public_key() {
        let seed: [u8; 32] = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
        let pair = ed25519_from_seed(&seed);
        let der = base64::engine::general_purpose::STANDARD.decode(pair.public.lines().nth(1).unwrap()).unwrap();
        assert_eq!(hex::encode(&der[12..]), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert!(jsonwebtoken::EncodingKey::from_ed_pem(pair.private.as_bytes()).is_ok());
        assert!(jsonwebtoken::DecodingKey::from_ed_pem(pair.public.as_bytes()).is_ok());
    }
}
