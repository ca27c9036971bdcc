//! Passkeys (WebAuthn): the relying party sesame is, the state a ceremony
//! keeps between its start and its finish, and the rules on passkey names.
//!
//! The checks of a ceremony (the origin in the client data, the RP ID hash
//! in the authenticator data, user presence and verification, the
//! signature, the challenge, the signature counter) are webauthn-rs's; this
//! module only chooses its options and says what its answers mean.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CreationChallengeResponse, CredentialID, DiscoverableAuthentication,
    Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Webauthn, WebauthnBuilder, WebauthnError,
};
use webauthn_rs_proto::{AllowCredentials, ResidentKeyRequirement};

use super::mfa::SignInMethod;
use super::name::sanitize_name;

/// How long a started ceremony can be finished.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(5 * 60);

/// Longest passkey name, in characters, after sanitizing.
pub const MAX_PASSKEY_NAME_LEN: usize = 64;

/// The name a passkey gets when none is given.
pub const DEFAULT_PASSKEY_NAME: &str = "Passkey";

/// Who sesame is to authenticators: the RP ID passkeys are bound to and
/// the origins whose pages may use them.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    webauthn: Webauthn,
    rp_id: String,
}

/// What a finished login proved, for the session it opens.
pub struct Asserted {
    /// Whether the authenticator verified the user (PIN, biometrics): the
    /// passkey was then two factors at once.
    pub user_verified: bool,
    /// The signature counter the authenticator reported.
    pub counter: u32,
    result: AuthenticationResult,
}

/// Why a finished ceremony was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum CeremonyError {
    /// The credential does not prove what it must (wrong origin or RP ID,
    /// bad signature, another challenge, no user verification, unknown
    /// credential...).
    Refused,
    /// The signature was right but the counter did not move forward: the
    /// credential may have been cloned.
    CounterRegressed,
}

/// A ceremony between its start and its finish, as kept in the database
/// (so any instance can finish what another started).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "state", rename_all = "snake_case")]
pub enum Ceremony {
    /// Adding a passkey to a signed-in account.
    Register(PasskeyRegistration),
    /// A login (with an address or without).
    Login(DiscoverableAuthentication),
    /// The answer to an address without passkeys (or without an account):
    /// shaped like a login, and nothing can finish it.
    Decoy,
}

impl RelyingParty {
    /// The relying party `rp_id` (a domain name, never an IP address)
    /// serving `origins`, each of which must be `rp_id` or a subdomain of it.
    pub fn new(rp_id: &str, origins: &[Url], rp_name: &str) -> anyhow::Result<RelyingParty> {
        match url::Host::parse(rp_id) {
            Ok(url::Host::Domain(_)) => {}
            _ => bail!("`{rp_id}` is not a domain name (WebAuthn refuses IP addresses)"),
        }
        let Some((first, others)) = origins.split_first() else {
            bail!("no origin allowed");
        };
        for origin in origins {
            let host = origin.domain().unwrap_or_default();
            if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
                bail!("the origin {origin} is not on {rp_id} or one of its subdomains");
            }
        }
        let builder = others.iter().fold(
            WebauthnBuilder::new(rp_id, first)
                .context("building the relying party")?
                .rp_name(rp_name)
                .timeout(CHALLENGE_TTL),
            |builder, origin| builder.append_allowed_origin(origin),
        );
        Ok(RelyingParty {
            webauthn: builder.build().context("building the relying party")?,
            rp_id: rp_id.to_owned(),
        })
    }

    /// The RP ID passkeys are bound to.
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Starts adding a passkey to the account `user_handle`; `existing`
    /// are its passkeys (the authenticator refuses to make a second one).
    /// Asks for a discoverable credential with user verification: a
    /// passkey logs in by itself, without an address.
    pub fn start_registration(
        &self,
        user_handle: Uuid,
        user_name: &str,
        display_name: &str,
        existing: &[Passkey],
    ) -> anyhow::Result<(CreationChallengeResponse, Ceremony)> {
        let exclude: Vec<CredentialID> = existing.iter().map(|p| p.cred_id().clone()).collect();
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(
                user_handle,
                user_name,
                display_name,
                Some(exclude).filter(|e| !e.is_empty()),
            )
            .context("starting a passkey registration")?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok((options, Ceremony::Register(state)))
    }

    /// Finishes adding a passkey: the new credential, or why it was refused.
    pub fn finish_registration(
        &self,
        credential: &RegisterPublicKeyCredential,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, WebauthnError> {
        self.webauthn.finish_passkey_registration(credential, state)
    }

    /// Starts a login. With `offered` (an address was given), the
    /// authenticator is asked for one of those credentials: the address's
    /// passkeys, or decoys for an address without any (made by a keyed
    /// hash of the address, so they are the same each time, as real ones
    /// would be); both answers have one shape. Without, any passkey of
    /// this relying party may answer (a discoverable login).
    ///
    /// The state is a discoverable ceremony either way: the finish checks
    /// the credential against the passkey as stored then (its counter
    /// included), not as it was at the start.
    pub fn start_login(
        &self,
        offered: Option<Vec<Vec<u8>>>,
    ) -> anyhow::Result<(RequestChallengeResponse, DiscoverableAuthentication)> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .context("starting a passkey login")?;
        // Conditional mediation (autofill) or a dialog is the client's choice.
        options.mediation = None;
        let public_key = &mut options.public_key;
        public_key.extensions = None;
        public_key.allow_credentials = offered
            .unwrap_or_default()
            .into_iter()
            .map(|id| AllowCredentials {
                type_: "public-key".into(),
                id,
                transports: None,
            })
            .collect();
        Ok((options, state))
    }

    /// Finishes a login with the stored passkey the credential names.
    pub fn finish_login(
        &self,
        credential: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        passkey: &Passkey,
    ) -> Result<Asserted, CeremonyError> {
        let result = self
            .webauthn
            .finish_discoverable_authentication_v2(credential, state, passkey);
        match result {
            Ok(result) => Ok(Asserted {
                user_verified: result.user_verified(),
                counter: result.counter(),
                result,
            }),
            Err(WebauthnError::CredentialPossibleCompromise) => {
                Err(CeremonyError::CounterRegressed)
            }
            Err(e) => {
                tracing::info!(error = %e, "a passkey login was refused");
                Err(CeremonyError::Refused)
            }
        }
    }

    /// The account a discoverable credential says it belongs to.
    pub fn user_handle_of(&self, credential: &PublicKeyCredential) -> Option<Uuid> {
        self.webauthn
            .identify_discoverable_authentication(credential)
            .ok()
            .map(|(user, _)| user)
    }
}

impl Asserted {
    /// The passkey with what this login changed (its counter, its backup
    /// state) applied.
    pub fn updated(&self, mut passkey: Passkey) -> Passkey {
        passkey.update_credential(&self.result);
        passkey
    }
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The decoy credential ids offered for `address` (which has no
/// passkeys, or no account): derived from it with a keyed hash, so each
/// request answers the same ids, and their number and lengths follow
/// those of real accounts (webauthn-rs's distribution).
pub fn decoy_credential_ids(key: &[u8], address: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    use webauthn_rs::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
    let generator = WebauthnFakeCredentialGenerator::<FakePasskeyDistribution>::new(key)
        .context("the decoy key")?;
    let ids = generator
        .generate(address.as_bytes())
        .context("making decoy credential ids")?;
    Ok(ids)
}

/// A passkey's name as given: HTML stripped, whitespace collapsed, at
/// most [`MAX_PASSKEY_NAME_LEN`] characters; empty or absent gives
/// [`DEFAULT_PASSKEY_NAME`].
pub fn passkey_name(raw: Option<&str>) -> Result<String, String> {
    let name = raw.map(sanitize_name).unwrap_or_default();
    if name.chars().count() > MAX_PASSKEY_NAME_LEN {
        return Err(format!("must be at most {MAX_PASSKEY_NAME_LEN} characters"));
    }
    Ok(if name.is_empty() {
        DEFAULT_PASSKEY_NAME.to_owned()
    } else {
        name
    })
}

/// How a passkey login signed in (its `amr`, RFC 8176): `hwk` (a key held
/// in hardware), and `mfa` when the authenticator verified the user too.
pub fn passkey_sign_in(user_verified: bool) -> SignInMethod {
    if user_verified {
        SignInMethod::VerifiedPasskey
    } else {
        SignInMethod::Passkey
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Url {
        Url::parse(raw).unwrap()
    }

    #[test]
    fn the_rp_id_must_be_a_domain_that_holds_every_origin() {
        let origins = [url("https://auth.example.com"), url("https://example.com")];
        assert!(RelyingParty::new("example.com", &origins, "sesame").is_ok());
        assert!(RelyingParty::new("auth.example.com", &origins, "sesame").is_err());
        assert!(RelyingParty::new("127.0.0.1", &[url("http://127.0.0.1:5000")], "s").is_err());
        assert!(RelyingParty::new("ample.com", &[url("https://example.com")], "s").is_err());
        assert!(RelyingParty::new("localhost", &[url("http://localhost:5000")], "s").is_ok());
        assert!(RelyingParty::new("example.com", &[], "s").is_err());
    }

    #[test]
    fn registration_asks_for_a_discoverable_verified_credential() {
        let rp = RelyingParty::new("localhost", &[url("http://localhost:5000")], "sesame").unwrap();
        let (options, _) = rp
            .start_registration(Uuid::now_v7(), "a@example.com", "a@example.com", &[])
            .unwrap();
        let json = serde_json::to_value(&options.public_key).unwrap();
        let selection = &json["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required", "{json}");
        assert_eq!(selection["userVerification"], "required", "{json}");
        assert_eq!(json["rp"]["id"], "localhost");
    }

    #[test]
    fn a_login_for_an_address_offers_its_credentials_and_nothing_else() {
        let rp = RelyingParty::new("localhost", &[url("http://localhost:5000")], "sesame").unwrap();
        let (options, _) = rp.start_login(Some(vec![vec![7; 20]])).unwrap();
        let json = serde_json::to_value(&options).unwrap();
        assert!(json.get("mediation").is_none(), "{json}");
        let json = &json["publicKey"];
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "allowCredentials",
                "challenge",
                "rpId",
                "timeout",
                "userVerification"
            ]
        );
        assert_eq!(json["allowCredentials"][0]["type"], "public-key");
    }

    #[test]
    fn decoys_are_the_same_for_one_address_and_differ_between_addresses() {
        let key = [9u8; 32];
        let a = decoy_credential_ids(&key, "a@example.com").unwrap();
        assert_eq!(a, decoy_credential_ids(&key, "a@example.com").unwrap());
        let others: Vec<_> = (0..8)
            .map(|i| decoy_credential_ids(&key, &format!("{i}@example.com")).unwrap())
            .collect();
        assert!(others.iter().all(|o| *o != a || o.is_empty()));
    }

    #[test]
    fn names_are_plain_bounded_and_default() {
        assert_eq!(passkey_name(None).unwrap(), DEFAULT_PASSKEY_NAME);
        assert_eq!(passkey_name(Some("  ")).unwrap(), DEFAULT_PASSKEY_NAME);
        assert_eq!(passkey_name(Some("<b>Laptop</b>")).unwrap(), "Laptop");
        assert!(passkey_name(Some(&"x".repeat(65))).is_err());
    }

    #[test]
    fn a_verified_passkey_is_two_factors() {
        assert_eq!(passkey_sign_in(false).amr(), "hwk");
        assert_eq!(passkey_sign_in(true).amr(), "hwk mfa");
    }
}
