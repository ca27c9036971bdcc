//! Property tests: the valid-by-construction domain types never panic on any
//! input and keep their invariants; the request-body parsers never panic on
//! any JSON; and error answers built from payload errors never repeat a
//! secret that was sent.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem::error::ResponseError;
use poem::http::StatusCode;
use poem_openapi::error::ParseRequestPayloadError;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::types::ParseFromJSON;
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};
use serde_json::{Map, Value};
use sesame::api::admin::{AdminUpdateBody, RoleName};
use sesame::api::auth::{ActivateBody, EmailBody, LoginBody, RefreshBody, ResetBody, SignupBody};
use sesame::api::credentials::{ChangePasswordBody, EmailChangeBody, EmailCodeBody};
use sesame::api::me::{PasswordBody, UpdateMeBody};
use sesame::api::sessions::LogoutBody;
use sesame::domain::codes::{OpaqueToken, VerificationCode};
use sesame::domain::email::EmailAddress;
use sesame::domain::name::sanitize_name;
use sesame::domain::password::{MAX_LEN, MIN_LEN, NewPassword};
use sesame::domain::referral::{self, ReferralCode};
use sesame::http::error::ApiError;
use sha2::{Digest, Sha256};

/// The referral alphabet: no look-alikes (no 0/O, 1/I/L, 5/S, 2/Z, 8/B).
const REFERRAL_ALPHABET: &str = "34679ACDEFGHJKMNPQRTUVWXY";

/// Reads response bodies (the only async step here).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
});

// ---------------------------------------------------------------- strategies

/// Any string, control characters, NUL and astral planes included.
fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Text made mostly of characters that matter to address parsing.
fn address_like() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        4 => "[a-zA-Z0-9]{1,8}",
        2 => Just("@".to_owned()),
        2 => Just(".".to_owned()),
        1 => "[-+_'%!#$&*/=?^`{|}~]",
        1 => Just(" ".to_owned()),
        1 => Just("\"".to_owned()),
        1 => "[\\[\\]():;<>,\\\\]",
        1 => any::<char>().prop_map(String::from),
        1 => Just("\u{212a}".to_owned()),
        1 => Just("\u{430}".to_owned()),
    ];
    prop::collection::vec(pieces, 0..16).prop_map(|p| p.concat())
}

/// Addresses that should be accepted, with case and surrounding spaces.
fn plausible_address() -> impl Strategy<Value = String> {
    let local = "[a-zA-Z0-9_%+'-]{1,12}(\\.[a-zA-Z0-9_%+'-]{1,12}){0,2}";
    let domain = "[a-zA-Z0-9]{1,10}(-[a-zA-Z0-9]{1,5})?(\\.[a-zA-Z]{2,8}){1,3}";
    prop::string::string_regex(&format!("[ \t]{{0,2}}{local}@{domain}[ \t]{{0,2}}"))
        .expect("a valid regex")
}

/// A string that must never show up in an answer (a password, say).
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "zq[a-zA-Z0-9]{8,24}",
        "zq[ -~]{8,40}",
        any_text(24).prop_map(|s| format!("zqSECRET{s}")),
    ]
}

const FIELDS: [&str; 16] = [
    "email",
    "password",
    "confirmPassword",
    "referrer",
    "name",
    "code",
    "token",
    "newPassword",
    "refreshToken",
    "all",
    "currentPassword",
    "newEmail",
    "active",
    "disabled",
    "role",
    "locked",
];

/// Any JSON value, its strings secrets, its keys often the real field names.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        secret().prop_map(Value::String),
        any_text(40).prop_map(Value::String),
    ];
    let key = prop_oneof![
        3 => prop::sample::select(&FIELDS[..]).prop_map(str::to_owned),
        1 => any_text(12),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..10)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object with each real field present or not, each a string more often than not.
fn shaped_body() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        4 => secret().prop_map(Value::String),
        1 => any_json(),
    ];
    prop::collection::vec(prop::option::of(value), FIELDS.len()).prop_map(|values| {
        let object = FIELDS
            .iter()
            .zip(values)
            .filter_map(|(field, value)| Some(((*field).to_owned(), value?)))
            .collect::<Map<_, _>>();
        Value::Object(object)
    })
}

fn body() -> impl Strategy<Value = Value> {
    prop_oneof![any_json(), shaped_body()]
}

/// Every string in a JSON value, keys included.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------- helpers

/// The body text of the answer to a payload error with this reason.
fn answer_to_payload_error(reason: String) -> (StatusCode, String) {
    let err = poem::Error::from(ParseRequestPayloadError { reason });
    let api = ApiError::from_poem(&err);
    let resp = api.as_response();
    let status = resp.status();
    let bytes = RUNTIME
        .block_on(resp.into_body().into_bytes())
        .expect("an error body");
    (
        status,
        String::from_utf8(bytes.to_vec()).expect("a UTF-8 body"),
    )
}

/// Asserts a body is the contract's `400 VALIDATION_FAILED` and contains none of `secrets`.
fn check_payload_answer(
    status: StatusCode,
    text: &str,
    secrets: &[String],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value =
        serde_json::from_str(text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(&body["error"], &Value::Bool(true));
    prop_assert_eq!(&body["code"], &Value::from("VALIDATION_FAILED"));
    for secret in secrets.iter().filter(|s| s.starts_with("zq")) {
        let escaped = serde_json::to_string(secret).expect("a string serializes");
        let escaped = &escaped[1..escaped.len() - 1];
        prop_assert!(!text.contains(secret.as_str()), "{secret:?} in {text}");
        prop_assert!(!text.contains(escaped), "{escaped:?} in {text}");
    }
    Ok(())
}

/// Parses `value` as body type `T`, and when refused, checks the answer.
fn parse_and_answer<T: ParseFromJSON>(value: &Value) -> Result<Option<T>, TestCaseError> {
    match T::parse_from_json(Some(value.clone())) {
        Ok(parsed) => Ok(Some(parsed)),
        Err(err) => {
            let mut secrets = Vec::new();
            strings(value, &mut secrets);
            let (status, text) = answer_to_payload_error(err.into_message());
            check_payload_answer(status, &text, &secrets)?;
            Ok(None)
        }
    }
}

/// A string field of an accepted body was a JSON string of at most `max` characters.
fn check_text_field(
    value: &Value,
    field: &str,
    parsed: &str,
    max: usize,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        value[field].as_str(),
        Some(parsed),
        "{} of {}",
        field,
        value
    );
    prop_assert!(
        parsed.chars().count() <= max,
        "{} longer than {}",
        field,
        max
    );
    Ok(())
}

/// 256 cases from a fixed seed, so a run is repeatable and CI cannot fail
/// on one unlucky draw; `PROPTEST_RNG_SEED=<n>` explores other inputs.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    let rng_seed = if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
        default.rng_seed
    } else {
        RngSeed::Fixed(0x5e5a_3e00)
    };
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed,
        ..default
    }
}

// ---------------------------------------------------------------- email addresses

fn check_email(raw: &str) -> Result<(), TestCaseError> {
    let Ok(email) = EmailAddress::parse(raw) else {
        return Ok(());
    };
    let s = email.as_str();
    prop_assert_eq!(s, raw.trim().to_lowercase());
    prop_assert_eq!(s, s.trim());
    prop_assert_eq!(s.to_lowercase(), s);
    prop_assert!(s.is_ascii(), "{:?}", s);
    prop_assert!(!s.chars().any(|c| c.is_ascii_control()), "{:?}", s);
    prop_assert!(!s.is_empty() && s.len() <= 254, "{:?}", s);
    let (local, domain) = s.rsplit_once('@').expect("an @");
    prop_assert!(!local.is_empty(), "{:?}", s);
    prop_assert!(domain.contains('.'), "{:?}", s);
    prop_assert!(domain.split('.').all(|label| !label.is_empty()), "{:?}", s);
    prop_assert_eq!(EmailAddress::parse(s), Ok(email.clone()));
    prop_assert_eq!(email.to_string(), s);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn email_parse_never_panics_and_normalizes_what_it_accepts(raw in any_text(300)) {
        check_email(&raw)?;
    }

    #[test]
    fn email_parse_keeps_its_invariants_on_address_like_text(raw in address_like()) {
        check_email(&raw)?;
    }

    #[test]
    fn plausible_addresses_are_accepted_in_any_case(raw in plausible_address()) {
        let email = EmailAddress::parse(&raw);
        prop_assert!(email.is_ok(), "{:?} refused: {:?}", raw, email);
        check_email(&raw)?;
        let shouted = EmailAddress::parse(&raw.to_uppercase());
        prop_assert_eq!(shouted, email);
    }

    #[test]
    fn masking_any_address_never_panics_and_hides_the_local_part(raw in any_text(80)) {
        let masked = EmailAddress::mask(&raw);
        if let Some((local, domain)) = raw.split_once('@') {
            // Only the first character of the local part shows. (Checking
            // that `local` does not occur in `masked` was wrong: it may
            // occur in the domain, as `ab` does in `ab@lab.io`.)
            let first: String = local.chars().take(1).collect();
            prop_assert_eq!(&masked, &format!("{first}***@{domain}"));
        } else {
            prop_assert_eq!(masked, "***");
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn accepted_addresses_have_no_quotes_spaces_or_brackets(
        local in "\"[ a-z<>@()]{1,8}\"|[a-z]{1,8}",
        domain in "\\[[0-9]{1,3}(\\.[0-9]{1,3}){3}\\]|[a-z]{1,8}\\.com",
    ) {
        let raw = format!("{local}@{domain}");
        if let Ok(email) = EmailAddress::parse(&raw) {
            let s = email.as_str();
            prop_assert!(
                !s.contains(['"', ' ', '[', ']', '<', '>', '(', ')']),
                "accepted {:?}",
                s
            );
        }
    }
}

// ---------------------------------------------------------------- codes and tokens

proptest! {
    #![proptest_config(config())]

    #[test]
    fn referral_codes_round_trip_in_any_case(
        upper in prop::collection::vec(any::<bool>(), referral::LEN),
        pad_left in "[ \t]{0,2}",
        pad_right in "[ \t]{0,2}",
    ) {
        let code = ReferralCode::generate();
        prop_assert_eq!(code.as_str().len(), referral::LEN);
        let typed: String = code
            .as_str()
            .chars()
            .zip(&upper)
            .map(|(c, up)| if *up { c } else { c.to_ascii_lowercase() })
            .collect();
        prop_assert_eq!(ReferralCode::parse(&format!("{pad_left}{typed}{pad_right}")), Some(code));
    }

    #[test]
    fn every_code_over_the_alphabet_parses_to_its_upper_case(
        chars in prop::collection::vec(
            prop::sample::select(REFERRAL_ALPHABET.chars().collect::<Vec<_>>()),
            referral::LEN,
        ),
        lower in prop::collection::vec(any::<bool>(), referral::LEN),
    ) {
        let canonical: String = chars.iter().collect();
        let typed: String = chars
            .iter()
            .zip(&lower)
            .map(|(c, low)| if *low { c.to_ascii_lowercase() } else { *c })
            .collect();
        let parsed = ReferralCode::parse(&typed);
        prop_assert_eq!(parsed.as_ref().map(ReferralCode::as_str), Some(canonical.as_str()));
    }

    #[test]
    fn referral_parse_never_panics_and_accepts_only_canonical_codes(raw in any_text(20)) {
        if let Some(code) = ReferralCode::parse(&raw) {
            let s = code.as_str();
            prop_assert_eq!(s.len(), referral::LEN);
            prop_assert!(s.chars().all(|c| REFERRAL_ALPHABET.contains(c)), "{:?}", s);
            prop_assert_eq!(s, raw.trim().to_ascii_uppercase());
            prop_assert_eq!(ReferralCode::parse(s), Some(code.clone()));
        }
    }

    #[test]
    fn a_verification_code_is_exactly_six_ascii_digits(raw in prop_oneof![
        any_text(12),
        "[ \t]{0,2}[0-9]{4,8}[ \t]{0,2}",
        "[0-9]{0,5}[٠-٩０-９a-z][0-9]{0,5}",
    ]) {
        let trimmed = raw.trim();
        let expected = trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit());
        let parsed = VerificationCode::parse(&raw);
        prop_assert_eq!(parsed.is_some(), expected, "{:?}", raw);
        if let Some(code) = parsed {
            prop_assert_eq!(code.expose(), trimmed);
        }
    }

    #[test]
    fn generated_verification_codes_parse_back(_n in 0..4u8) {
        let code = VerificationCode::generate();
        let parsed = VerificationCode::parse(code.expose()).expect("a generated code parses");
        prop_assert_eq!(parsed.hash_for("user"), code.hash_for("user"));
        prop_assert_ne!(code.hash_for("a"), code.hash_for("b"));
    }

    #[test]
    fn opaque_token_parse_never_panics_and_accepts_only_canonical_tokens(raw in prop_oneof![
        any_text(60),
        "[A-Za-z0-9_-]{42,44}",
        "[A-Za-z0-9_=+/-]{43}",
    ]) {
        if let Some(token) = OpaqueToken::parse(&raw) {
            let text = token.expose();
            prop_assert_eq!(text, raw.trim());
            prop_assert_eq!(text.len(), 43);
            let bytes = URL_SAFE_NO_PAD.decode(text).expect("a parsed token decodes");
            prop_assert_eq!(bytes.len(), 32);
            // One spelling per token: no second string hashes to the same secret.
            prop_assert_eq!(URL_SAFE_NO_PAD.encode(&bytes), text);
            prop_assert_eq!(token.hash(), Sha256::digest(text.as_bytes()).to_vec());
        }
    }

    #[test]
    fn every_256_bit_value_is_a_token(
        bytes in prop::array::uniform32(any::<u8>()),
        pad in "[ \t\n]{0,2}",
    ) {
        let text = URL_SAFE_NO_PAD.encode(bytes);
        let token = OpaqueToken::parse(&format!("{pad}{text}{pad}"));
        prop_assert_eq!(token.map(|t| t.expose().to_owned()), Some(text));
    }
}

// ---------------------------------------------------------------- passwords

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_password_policy_never_panics_and_bounds_the_length(
        // zxcvbn is slow in a debug build on long inputs: mostly short and
        // over-long ones (refused before it runs), a few long ones.
        raw in prop_oneof![
            4 => any_text(12),
            4 => "[ -~]{8,24}",
            3 => prop::collection::vec(any::<char>(), 8..32).prop_map(String::from_iter),
            2 => prop::collection::vec(any::<char>(), 129..260).prop_map(String::from_iter),
            1 => prop::collection::vec(any::<char>(), 100..=MAX_LEN).prop_map(String::from_iter),
        ],
        email in plausible_address(),
    ) {
        let email = EmailAddress::parse(&email).expect("a plausible address");
        let len = raw.chars().count();
        match NewPassword::parse(&raw, &email) {
            Ok(password) => {
                prop_assert!((MIN_LEN..=MAX_LEN).contains(&len), "{} characters accepted", len);
                prop_assert!(!raw.contains('\0'));
                prop_assert_ne!(raw.to_lowercase(), email.as_str());
                prop_assert_eq!(password.expose(), raw.as_str());
            }
            Err(why) => {
                prop_assert!(!why.is_empty());
                if len < MIN_LEN {
                    prop_assert_eq!(why, format!("must be at least {MIN_LEN} characters"));
                } else if len > MAX_LEN {
                    prop_assert_eq!(why, format!("must be at most {MAX_LEN} characters"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- display names

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_sanitized_name_never_holds_markup_or_stray_whitespace(raw in prop_oneof![
        any_text(60),
        prop::collection::vec(
            prop_oneof![
                Just("<".to_owned()),
                Just(">".to_owned()),
                Just("&".to_owned()),
                Just("&lt;".to_owned()),
                Just("<script>".to_owned()),
                Just("</b>".to_owned()),
                Just("<!--".to_owned()),
                Just("<![CDATA[".to_owned()),
                Just(" ".to_owned()),
                "[a-zA-Z]{1,6}",
                any::<char>().prop_map(String::from),
            ],
            0..12,
        )
        .prop_map(|p| p.concat()),
    ]) {
        let name = sanitize_name(&raw);
        prop_assert!(!name.contains(['<', '>', '\0']), "{:?} -> {:?}", raw, name);
        prop_assert_eq!(name.trim(), name.as_str());
        prop_assert!(!name.contains("  "), "{:?}", name);
        prop_assert!(!name.chars().any(|c| c.is_whitespace() && c != ' '), "{:?}", name);
    }
}

// ---------------------------------------------------------------- request bodies

proptest! {
    #![proptest_config(config())]

    #[test]
    fn signup_bodies_never_panic_and_accept_only_strings(value in body()) {
        if let Some(parsed) = parse_and_answer::<SignupBody>(&value)? {
            check_text_field(&value, "email", &parsed.email, 320)?;
            check_text_field(&value, "password", &parsed.password, 1024)?;
            check_text_field(&value, "confirmPassword", &parsed.confirm_password, 1024)?;
            if let Some(name) = &parsed.name {
                check_text_field(&value, "name", name, 1000)?;
            }
            if let Some(referrer) = &parsed.referrer {
                check_text_field(&value, "referrer", referrer, 64)?;
            }
        }
    }

    #[test]
    fn login_bodies_never_panic_and_accept_only_strings(value in body()) {
        if let Some(parsed) = parse_and_answer::<LoginBody>(&value)? {
            check_text_field(&value, "email", &parsed.email, 320)?;
            check_text_field(&value, "password", &parsed.password, 1024)?;
        }
    }

    #[test]
    fn the_other_anonymous_bodies_never_panic(value in body()) {
        if let Some(parsed) = parse_and_answer::<ActivateBody>(&value)? {
            check_text_field(&value, "email", &parsed.email, 320)?;
            check_text_field(&value, "code", &parsed.code, 64)?;
        }
        if let Some(parsed) = parse_and_answer::<ResetBody>(&value)? {
            check_text_field(&value, "token", &parsed.token, 256)?;
            check_text_field(&value, "newPassword", &parsed.new_password, 1024)?;
        }
        if let Some(parsed) = parse_and_answer::<RefreshBody>(&value)? {
            check_text_field(&value, "refreshToken", &parsed.refresh_token, 256)?;
        }
        if let Some(parsed) = parse_and_answer::<EmailBody>(&value)? {
            check_text_field(&value, "email", &parsed.email, 320)?;
        }
        if let Some(parsed) = parse_and_answer::<LogoutBody>(&value)? {
            prop_assert_eq!(value["all"].as_bool().unwrap_or(false), parsed.all);
        }
    }

    #[test]
    fn the_account_bodies_never_panic_and_accept_only_strings(value in body()) {
        if let Some(parsed) = parse_and_answer::<ChangePasswordBody>(&value)? {
            check_text_field(&value, "currentPassword", &parsed.current_password, 1024)?;
            check_text_field(&value, "newPassword", &parsed.new_password, 1024)?;
            check_text_field(&value, "confirmPassword", &parsed.confirm_password, 1024)?;
        }
        if let Some(parsed) = parse_and_answer::<EmailChangeBody>(&value)? {
            check_text_field(&value, "password", &parsed.password, 1024)?;
            check_text_field(&value, "newEmail", &parsed.new_email, 320)?;
        }
        if let Some(parsed) = parse_and_answer::<EmailCodeBody>(&value)? {
            check_text_field(&value, "code", &parsed.code, 64)?;
        }
        if let Some(parsed) = parse_and_answer::<PasswordBody>(&value)? {
            check_text_field(&value, "password", &parsed.password, 1024)?;
        }
        if let Some(parsed) = parse_and_answer::<UpdateMeBody>(&value)? {
            match &parsed.name {
                MaybeUndefined::Value(name) => check_text_field(&value, "name", name, 1000)?,
                MaybeUndefined::Null => prop_assert!(value["name"].is_null(), "{}", value),
                MaybeUndefined::Undefined => prop_assert!(value.get("name").is_none(), "{}", value),
            }
        }
        if let Some(parsed) = parse_and_answer::<AdminUpdateBody>(&value)? {
            for (field, flag) in [
                ("active", parsed.active),
                ("disabled", parsed.disabled),
                ("locked", parsed.locked),
            ] {
                prop_assert_eq!(value[field].as_bool(), flag, "{} of {}", field, value);
            }
            let role = parsed.role.map(|r| match r {
                RoleName::User => "user",
                RoleName::Admin => "admin",
            });
            prop_assert_eq!(value["role"].as_str(), role, "role of {}", value);
        }
    }

    #[test]
    fn a_body_that_is_not_json_gets_an_answer_without_the_secret_in_it(
        secret in secret(),
        prefix in prop::sample::select(
            vec!["{\"password\": \"", "\"", "[\"", "{\"a\": [1, \"", ""],
        ),
        garbage in any_text(8),
    ) {
        let raw = format!("{prefix}{secret}{garbage}");
        if let Err(err) = serde_json::from_slice::<Value>(raw.as_bytes()) {
            let (status, text) = answer_to_payload_error(err.to_string());
            check_payload_answer(status, &text, std::slice::from_ref(&secret))?;
        }
    }

    #[test]
    fn any_client_error_status_renders_in_the_contract_shape(status in 400u16..600) {
        let Ok(status) = StatusCode::from_u16(status) else {
            return Ok(());
        };
        let resp = ApiError::from_poem(&poem::Error::from_status(status)).as_response();
        let rendered = resp.status();
        let bytes = RUNTIME
            .block_on(resp.into_body().into_bytes())
            .expect("an error body");
        let body: Value = serde_json::from_slice(&bytes).expect("a JSON error body");
        prop_assert_eq!(&body["error"], &Value::Bool(true));
        prop_assert!(body["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", body);
        prop_assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", body);
        prop_assert_eq!(
            rendered.is_client_error(),
            status.is_client_error(),
            "{} rendered as {}",
            status,
            rendered
        );
    }
}

// ---------------------------------------------------------------- worked examples

/// The message poem-openapi writes for a body of the wrong JSON type.
fn wrong_type_reason(sent: &Value) -> String {
    let err = SignupBody::parse_from_json(Some(sent.clone()))
        .err()
        .expect("a non-object body is refused");
    err.into_message()
}

#[test]
fn a_string_body_is_described_without_its_value() {
    let sent = Value::from("hunter2 is my password");
    let reason = wrong_type_reason(&sent);
    assert!(
        reason.contains("hunter2"),
        "the raw reason quotes it: {reason}"
    );

    let (status, text) = answer_to_payload_error(reason);

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("found a value of another type"), "{text}");
}

#[test]
fn a_body_that_imitates_the_error_format_is_described_without_its_value() {
    let sent = Value::from("x. (occurred while parsing \"SignupBody\") hunter2 is my password");
    let reason = wrong_type_reason(&sent);

    let (_, text) = answer_to_payload_error(reason);

    assert!(!text.contains("hunter2"), "{text}");
}
