//! The second factor's pieces: TOTP secrets and codes (RFC 6238, through
//! `totp-rs`), recovery codes, the key that seals secrets at rest, and the
//! `amr` values a session carries. No HTTP, no SQL.

use rand::RngCore;
use rand::rngs::OsRng;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use totp_rs::{Algorithm, TOTP};

use super::secret::Secret;

/// Seconds per TOTP time step (RFC 6238's default, what every app assumes).
pub const TOTP_STEP_SECS: u64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: usize = 6;
/// Steps of clock skew accepted either way.
pub const TOTP_SKEW_STEPS: i64 = 1;
/// Recovery codes made at once.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Wrong codes one login's second step takes before its token is void.
pub const MAX_MFA_ATTEMPTS: u32 = 5;
/// How long the token of a login's second step lives.
pub const MFA_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// A TOTP secret: 160 bits (RFC 4226's recommended size) from the OS CSPRNG.
#[derive(Clone)]
pub struct TotpSecret(Secret<Vec<u8>>);

impl TotpSecret {
    /// A fresh secret.
    pub fn generate() -> TotpSecret {
        let mut bytes = vec![0u8; 20];
        OsRng.fill_bytes(&mut bytes);
        TotpSecret(Secret::new(bytes))
    }

    /// The secret as base32 without padding, as authenticator apps take it.
    pub fn base32(&self) -> String {
        self.totp("").get_secret_base32()
    }

    /// The `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER` URI that
    /// authenticator apps read (from a QR code). SHA-1, 6 digits and 30 s
    /// are the URI's defaults, so they are left out.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let mut totp = self.totp(account);
        // `:` separates issuer and account in the label; config refuses it
        // in the issuer, and an address does not have one.
        totp.issuer = Some(issuer.replace(':', " "));
        totp.account_name = account.replace(':', " ");
        totp.get_url()
    }

    /// The time step of `code` if it is the code of a step within one step
    /// of `now_unix` and later than `last_step` (a code is accepted once:
    /// a replay, or an older code after a newer one, is refused).
    pub fn accepted_step(
        &self,
        code: &TotpCode,
        now_unix: u64,
        last_step: Option<i64>,
    ) -> Option<i64> {
        let totp = self.totp("");
        let now_step = (now_unix / TOTP_STEP_SECS) as i64;
        let mut accepted = None;
        // Every candidate is computed and compared in constant time, so the
        // time taken does not say which step matched.
        for step in now_step - TOTP_SKEW_STEPS..=now_step + TOTP_SKEW_STEPS {
            let Ok(at) = u64::try_from(step) else {
                continue;
            };
            let expected = totp.generate(at * TOTP_STEP_SECS);
            let matches: bool =
                subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.0.expose().as_bytes())
                    .into();
            if matches && last_step.is_none_or(|last| step > last) {
                accepted = Some(step);
            }
        }
        accepted
    }

    /// The raw bytes, to seal for storage.
    fn bytes(&self) -> &[u8] {
        self.0.expose()
    }

    fn totp(&self, account: &str) -> TOTP {
        TOTP::new_unchecked(
            Algorithm::SHA1,
            TOTP_DIGITS,
            TOTP_SKEW_STEPS as u8,
            TOTP_STEP_SECS,
            self.bytes().to_vec(),
            None,
            account.to_owned(),
        )
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// A 6-digit code from an authenticator app.
#[derive(Debug, Clone)]
pub struct TotpCode(Secret<String>);

/// A single-use recovery code: 16 characters of Crockford's base32 (80
/// bits), shown as `xxxx-xxxx-xxxx-xxxx`.
#[derive(Debug, Clone)]
pub struct RecoveryCode(Secret<String>);

/// Crockford's base32 alphabet, lower-case: no i, l, o or u to misread.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const RECOVERY_CHARS: usize = 16;

impl RecoveryCode {
    /// A fresh code from the OS CSPRNG.
    pub fn generate() -> RecoveryCode {
        let mut bytes = [0u8; RECOVERY_CHARS];
        OsRng.fill_bytes(&mut bytes);
        // 256 is a multiple of 32: each byte gives an unbiased character.
        let chars: String = bytes
            .iter()
            .map(|b| RECOVERY_ALPHABET[usize::from(b % 32)] as char)
            .collect();
        RecoveryCode(Secret::new(chars))
    }

    /// A code as typed: any case, with or without dashes and spaces; `i`
    /// and `l` read as `1`, `o` as `0` (Crockford's rule).
    pub fn parse(raw: &str) -> Option<RecoveryCode> {
        let mut chars = String::with_capacity(RECOVERY_CHARS);
        for c in raw.trim().chars() {
            let c = match c.to_ascii_lowercase() {
                '-' | ' ' => continue,
                'i' | 'l' => '1',
                'o' => '0',
                c if c.is_ascii() && RECOVERY_ALPHABET.contains(&(c as u8)) => c,
                _ => return None,
            };
            chars.push(c);
        }
        (chars.len() == RECOVERY_CHARS).then(|| RecoveryCode(Secret::new(chars)))
    }

    /// The code as shown to the user, `xxxx-xxxx-xxxx-xxxx`.
    pub fn display(&self) -> String {
        let chars = self.0.expose();
        (0..RECOVERY_CHARS)
            .step_by(4)
            .map(|at| &chars[at..at + 4])
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// A second factor as typed: a TOTP code or a recovery code.
#[derive(Debug, Clone)]
pub enum SecondFactorCode {
    Totp(TotpCode),
    Recovery(RecoveryCode),
}

impl SecondFactorCode {
    /// Six digits are a TOTP code; anything else must be a recovery code.
    pub fn parse(raw: &str) -> Option<SecondFactorCode> {
        let code = raw.trim();
        if code.len() == TOTP_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
            return Some(SecondFactorCode::Totp(TotpCode(Secret::new(
                code.to_owned(),
            ))));
        }
        RecoveryCode::parse(code).map(SecondFactorCode::Recovery)
    }
}

/// The key that seals TOTP secrets at rest (AES-256-GCM) and keys the
/// hashes of recovery codes (HMAC-SHA-256 under a key derived from it).
pub struct MfaKey(Secret<Vec<u8>>);

/// Length of an [`MfaKey`] in bytes.
pub const MFA_KEY_LEN: usize = 32;

impl MfaKey {
    /// Fresh key material from the OS CSPRNG.
    pub fn generate() -> Vec<u8> {
        let mut bytes = vec![0u8; MFA_KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        bytes
    }

    /// The key from stored material; `None` unless it is 32 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<MfaKey> {
        (bytes.len() == MFA_KEY_LEN).then(|| MfaKey(Secret::new(bytes)))
    }

    /// Encrypts a secret for `user_id`: a random 96-bit nonce, then the
    /// ciphertext and tag. The user id is authenticated with it, so a
    /// sealed secret moved to another account does not open.
    pub fn seal(&self, secret: &TotpSecret, user_id: &str) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut sealed = secret.bytes().to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(user_id.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| anyhow::anyhow!("sealing a TOTP secret failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// Decrypts what [`MfaKey::seal`] made for `user_id`.
    pub fn open(&self, sealed: &[u8], user_id: &str) -> anyhow::Result<TotpSecret> {
        anyhow::ensure!(
            sealed.len() > NONCE_LEN,
            "a stored TOTP secret is truncated"
        );
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("a stored TOTP secret has a bad nonce"))?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::from(user_id.as_bytes()), &mut buffer)
            .map_err(|_| {
                anyhow::anyhow!("a stored TOTP secret does not open with the key in mfa_keys")
            })?;
        Ok(TotpSecret(Secret::new(plain.to_vec())))
    }

    /// The stored form of a recovery code: HMAC-SHA-256 under a key derived
    /// from this one, over the user id and the code. 80 random bits need no
    /// slow hash; the key means a copy of the table alone cannot even be
    /// searched offline.
    pub fn recovery_code_hash(&self, user_id: &str, code: &RecoveryCode) -> Vec<u8> {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, self.0.expose()),
            b"sesame recovery codes v1",
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref());
        let mut context = hmac::Context::with_key(&key);
        context.update(user_id.as_bytes());
        context.update(b":");
        context.update(code.0.expose().as_bytes());
        context.sign().as_ref().to_vec()
    }

    fn aead(&self) -> anyhow::Result<LessSafeKey> {
        let key = UnboundKey::new(&AES_256_GCM, self.0.expose())
            .map_err(|_| anyhow::anyhow!("the TOTP key in mfa_keys is not a 256-bit key"))?;
        Ok(LessSafeKey::new(key))
    }
}

/// How a session's user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInMethod {
    /// A password alone.
    Password,
    /// A password and a TOTP code.
    PasswordAndTotp,
    /// A password and a recovery code.
    PasswordAndRecoveryCode,
}

impl SignInMethod {
    /// The RFC 8176 `amr` values, space-separated (as stored with the session).
    pub fn amr(self) -> &'static str {
        match self {
            SignInMethod::Password => "pwd",
            SignInMethod::PasswordAndTotp => "pwd otp mfa",
            SignInMethod::PasswordAndRecoveryCode => "pwd mfa",
        }
    }
}

/// The `amr` claim of stored, space-separated values.
pub fn amr_claim(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_of(bytes: &[u8]) -> TotpSecret {
        TotpSecret(Secret::new(bytes.to_vec()))
    }

    fn code(raw: &str) -> TotpCode {
        match SecondFactorCode::parse(raw) {
            Some(SecondFactorCode::Totp(code)) => code,
            other => panic!("not a TOTP code: {other:?}"),
        }
    }

    #[test]
    fn rfc_6238_test_vectors_are_accepted_at_their_step_and_its_neighbours_only() {
        // RFC 6238 appendix B, SHA-1, the last 6 of the 8 digits.
        let secret = secret_of(b"12345678901234567890");
        for (time, digits) in [
            (1111111109u64, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
            (20000000000, "353130"),
        ] {
            let step = (time / 30) as i64;
            assert_eq!(secret.accepted_step(&code(digits), time, None), Some(step));
            assert_eq!(
                secret.accepted_step(&code(digits), time + 30, None),
                Some(step)
            );
            assert_eq!(
                secret.accepted_step(&code(digits), time - 30, None),
                Some(step)
            );
            assert_eq!(secret.accepted_step(&code(digits), time + 60, None), None);
            assert_eq!(secret.accepted_step(&code(digits), time - 60, None), None);
            // Once its step was used, the same code (or an older one) is refused.
            assert_eq!(secret.accepted_step(&code(digits), time, Some(step)), None);
        }
    }

    #[test]
    fn secrets_are_160_bits_and_the_uri_names_issuer_and_account() {
        let secret = TotpSecret::generate();
        assert_eq!(secret.bytes().len(), 20);
        assert_eq!(secret.base32().len(), 32);
        let uri = secret.otpauth_uri("sesame", "amy@example.com");
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/sesame:amy%40example.com?secret={}&issuer=sesame",
                secret.base32()
            )
        );
    }

    #[test]
    fn recovery_codes_round_trip_in_any_spelling() {
        for _ in 0..100 {
            let code = RecoveryCode::generate();
            let shown = code.display();
            assert_eq!(shown.len(), 19);
            let again = RecoveryCode::parse(&shown.to_uppercase().replace('-', " ")).unwrap();
            assert_eq!(again.display(), shown);
        }
        assert!(RecoveryCode::parse("abcd-efgh-jkmn").is_none());
        assert!(RecoveryCode::parse("abcd-efgh-jkmn-pqru").is_none());
        assert!(matches!(
            SecondFactorCode::parse("123456"),
            Some(SecondFactorCode::Totp(_))
        ));
        assert!(SecondFactorCode::parse("12345").is_none());
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_user() {
        let key = MfaKey::from_bytes(MfaKey::generate()).unwrap();
        let other = MfaKey::from_bytes(MfaKey::generate()).unwrap();
        let secret = TotpSecret::generate();
        let sealed = key.seal(&secret, "u1").unwrap();
        assert!(!sealed.windows(20).any(|w| w == secret.bytes()));
        assert_eq!(key.open(&sealed, "u1").unwrap().bytes(), secret.bytes());
        assert!(key.open(&sealed, "u2").is_err());
        assert!(other.open(&sealed, "u1").is_err());
        let code = RecoveryCode::generate();
        assert_ne!(
            key.recovery_code_hash("u1", &code),
            key.recovery_code_hash("u2", &code)
        );
        assert_ne!(
            key.recovery_code_hash("u1", &code),
            other.recovery_code_hash("u1", &code)
        );
    }
}
