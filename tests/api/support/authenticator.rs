//! A software passkey authenticator, standing in for a browser and its
//! authenticator: it takes the `publicKey` options sesame answers and
//! returns what `credential.toJSON()` would. It makes discoverable ES256
//! credentials with `none` attestation, verifies the user, and can be told
//! to lie: another origin, another RP ID, a counter wound back.
// Not every test uses every helper.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value as Cbor;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The origin of the test app's pages (`SESAME_APP_URL`'s default).
pub const APP_ORIGIN: &str = "http://localhost:5000";

/// Flags of the authenticator data.
const USER_PRESENT: u8 = 0x01;
const USER_VERIFIED: u8 = 0x04;
const ATTESTED_CREDENTIAL: u8 = 0x40;

/// One credential the authenticator holds.
pub struct Credential {
    pub id: Vec<u8>,
    pub rp_id: String,
    pub user_handle: Vec<u8>,
    key: SigningKey,
    /// The signature counter (moved forward by every assertion).
    pub counter: u32,
}

/// A software authenticator at a browser origin.
pub struct SoftAuthenticator {
    /// The origin the "browser" puts in the client data.
    pub origin: String,
    /// Signs for this RP ID instead of the one in the options (a phishing
    /// site's own RP ID); `None`: the options' one.
    pub rp_id_override: Option<String>,
    /// Whether it verifies the user (PIN, biometrics).
    pub verifies_user: bool,
    pub credentials: Vec<Credential>,
}

impl SoftAuthenticator {
    /// An authenticator used from the app's own origin.
    pub fn new() -> SoftAuthenticator {
        SoftAuthenticator::at(APP_ORIGIN)
    }

    /// An authenticator used from `origin`.
    pub fn at(origin: &str) -> SoftAuthenticator {
        SoftAuthenticator {
            origin: origin.to_owned(),
            rp_id_override: None,
            verifies_user: true,
            credentials: Vec::new(),
        }
    }

    /// `navigator.credentials.create({publicKey})`: makes a credential and
    /// returns it as `credential.toJSON()` does.
    pub fn create(&mut self, public_key: &Value) -> Value {
        let rp_id = self
            .rp_id_override
            .clone()
            .unwrap_or_else(|| str_of(&public_key["rp"]["id"]));
        let user_handle = b64_decode(&str_of(&public_key["user"]["id"]));
        let client_data = self.client_data("webauthn.create", public_key);
        let key = new_key();
        let id: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
        let mut auth_data = self.auth_data(&rp_id, ATTESTED_CREDENTIAL, 0);
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(&key));
        let attestation = cbor(&Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]));
        let answer = json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {"credProps": {"rk": true}},
        });
        self.credentials.push(Credential {
            id,
            rp_id,
            user_handle,
            key,
            counter: 0,
        });
        answer
    }

    /// `navigator.credentials.get({publicKey})`: signs the challenge with
    /// the first credential the options allow (any of this RP ID when they
    /// list none), moving its counter forward; as `credential.toJSON()`.
    pub fn get(&mut self, public_key: &Value) -> Value {
        let rp_id = self
            .rp_id_override
            .clone()
            .unwrap_or_else(|| str_of(&public_key["rpId"]));
        let allowed: Vec<Vec<u8>> = public_key["allowCredentials"]
            .as_array()
            .map(|list| list.iter().map(|c| b64_decode(&str_of(&c["id"]))).collect())
            .unwrap_or_default();
        let index = self
            .credentials
            .iter()
            .position(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .unwrap_or_else(|| panic!("no credential for {rp_id} among {allowed:?}"));
        self.credentials[index].counter += 1;
        self.sign_with(index, public_key, &rp_id)
    }

    /// [`SoftAuthenticator::get`] ignoring the options' allow list: what a
    /// credential the server did not offer (another account's, or one
    /// facing a decoy) signs.
    pub fn get_unoffered(&mut self, public_key: &Value) -> Value {
        let mut options = public_key.clone();
        options["allowCredentials"] = json!([]);
        self.get(&options)
    }

    /// Signs with credential `index` without moving its counter (a copy of
    /// the key that lags behind).
    pub fn get_with_counter(&mut self, public_key: &Value, counter: u32) -> Value {
        let rp_id = str_of(&public_key["rpId"]);
        self.credentials[0].counter = counter;
        self.sign_with(0, public_key, &rp_id)
    }

    fn sign_with(&self, index: usize, public_key: &Value, rp_id: &str) -> Value {
        let credential = &self.credentials[index];
        let client_data = self.client_data("webauthn.get", public_key);
        let auth_data = self.auth_data(rp_id, 0, credential.counter);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = credential.key.sign(&signed);
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.to_der().as_bytes()),
                "userHandle": b64(&credential.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    fn client_data(&self, kind: &str, public_key: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": str_of(&public_key["challenge"]),
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .expect("client data")
    }

    fn auth_data(&self, rp_id: &str, extra_flags: u8, counter: u32) -> Vec<u8> {
        let verified = if self.verifies_user { USER_VERIFIED } else { 0 };
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(USER_PRESENT | verified | extra_flags);
        data.extend_from_slice(&counter.to_be_bytes());
        data
    }
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        SoftAuthenticator::new()
    }
}

fn new_key() -> SigningKey {
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = SigningKey::from_bytes(&bytes.into()) {
            return key;
        }
    }
}

/// The credential's public key as a COSE_Key (EC2, P-256, ES256).
fn cose_key(key: &SigningKey) -> Vec<u8> {
    let point = key.verifying_key().to_encoded_point(false);
    let x = point.x().expect("uncompressed point").to_vec();
    let y = point.y().expect("uncompressed point").to_vec();
    cbor(&Cbor::Map(vec![
        (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
        (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
        (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
        (Cbor::Integer((-2).into()), Cbor::Bytes(x)),
        (Cbor::Integer((-3).into()), Cbor::Bytes(y)),
    ]))
}

fn cbor(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("CBOR encodes");
    out
}

/// base64url without padding, as WebAuthn's JSON forms use.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("`{text}` is not base64url: {e}"))
}

fn str_of(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}
