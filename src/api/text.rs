//! Strict JSON strings for request fields, each kind with the constraints
//! the spec states for it.
//!
//! poem-openapi's `String` accepts `123` and `true` as `"123"` and `"true"`,
//! and its type errors quote the value that was sent (which may be a
//! password). [`Text`] refuses anything but a JSON string and never repeats
//! the value in its error.
//!
//! A kind ([`TextKind`]) does two things: it states in the spec what a
//! valid value looks like (`format: email`, a length range, a pattern), so
//! clients and test generators send what the server takes; and it caps how
//! many characters are read at all. The domain still checks the value and
//! answers with its own codes and messages (a malformed code is
//! `INVALID_CODE`, a short password names the policy): the spec describes
//! those rules, it does not replace them.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

use crate::domain::password;

/// What a kind of request text looks like.
pub trait TextKind: Send + Sync + 'static {
    /// Name of the kind (for poem-openapi's type names).
    const NAME: &'static str;
    /// Longest value read at all, in characters; longer ones are refused
    /// with `400 VALIDATION_FAILED` before any rule of the domain runs.
    const MAX_CHARS: usize;
    /// The schema the spec shows: `type: string` plus this kind's constraints.
    fn schema() -> MetaSchema;
}

/// A request field that must be a JSON string of kind `K`.
pub struct Text<K: TextKind = Plain>(String, PhantomData<K>);

impl<K: TextKind> Text<K> {
    /// The text as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<K: TextKind> Deref for Text<K> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

// Never prints the value: it may be a password or a token.
impl<K: TextKind> fmt::Debug for Text<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Text<{}>({} chars)", K::NAME, self.0.chars().count())
    }
}

impl<K: TextKind> Type for Text<K> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        format!("string_{}", K::NAME).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(K::schema()))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: TextKind> ParseFromJSON for Text<K> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) if s.chars().nth(K::MAX_CHARS).is_some() => Err(
                ParseError::custom(format!("must be at most {} characters", K::MAX_CHARS)),
            ),
            Some(Value::String(s)) => Ok(Text(s, PhantomData)),
            None | Some(Value::Null) => Err(ParseError::custom("a string is required")),
            Some(other) => Err(ParseError::custom(format!(
                "expected a string, got {}",
                json_kind(&other)
            ))),
        }
    }
}

impl<K: TextKind> ToJSON for Text<K> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// `type: string` with a length range.
fn string(min: Option<usize>, max: usize) -> MetaSchema {
    MetaSchema {
        min_length: min,
        max_length: Some(max),
        ..MetaSchema::new("string")
    }
}

/// `type: string` matching `pattern`.
fn pattern(pattern: &str) -> MetaSchema {
    MetaSchema {
        pattern: Some(pattern.to_owned()),
        ..MetaSchema::new("string")
    }
}

/// Any string up to 320 characters (a search term).
pub struct Plain;

impl TextKind for Plain {
    const NAME: &'static str = "plain";
    const MAX_CHARS: usize = 320;
    fn schema() -> MetaSchema {
        string(None, Self::MAX_CHARS)
    }
}

/// An email address: at most 254 characters (what SMTP carries), ASCII,
/// no quoted local part and no IP literal; compared case-insensitively.
pub struct Email;

impl TextKind for Email {
    const NAME: &'static str = "email";
    // Surrounding whitespace is trimmed before the 254 are counted.
    const MAX_CHARS: usize = 320;
    fn schema() -> MetaSchema {
        MetaSchema {
            format: Some("email"),
            ..string(None, 254)
        }
    }
}

/// A password as the policy allows it: 8 to 128 characters. Also stated
/// for the current password, since no account has another; a wrong one is
/// answered `401 INVALID_CREDENTIALS`, not `400`.
pub struct Password;

impl TextKind for Password {
    const NAME: &'static str = "password";
    // Longer ones are refused unhashed; 129–1024 get the policy's message.
    const MAX_CHARS: usize = 1024;
    fn schema() -> MetaSchema {
        string(Some(password::MIN_LEN), password::MAX_LEN)
    }
}

/// What a [`Code`] looks like.
pub const CODE_PATTERN: &str = "^[0-9]{6}$";
/// What a [`Token`] looks like.
pub const TOKEN_PATTERN: &str = "^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$";
/// What a [`ReferralCode`] looks like: `referral::ALPHABET` in both cases
/// (the tests below check it against the generator).
pub const REFERRAL_CODE_PATTERN: &str = "^[34679ACDEFGHJKMNPQRTUVWXYacdefghjkmnpqrtuvwxy]{8}$";

/// A 6-digit code from an email.
pub struct Code;

impl TextKind for Code {
    const NAME: &'static str = "code";
    const MAX_CHARS: usize = 64;
    fn schema() -> MetaSchema {
        pattern(CODE_PATTERN)
    }
}

/// What a [`SecondFactor`] code looks like: six digits from an
/// authenticator app, or a recovery code (16 characters of Crockford's
/// base32, dashes optional, any case; `i`, `l` and `o` read as `1`, `1`, `0`).
pub const SECOND_FACTOR_PATTERN: &str = "^([0-9]{6}|[0-9A-TV-Za-tv-z]{4}-?[0-9A-TV-Za-tv-z]{4}-?[0-9A-TV-Za-tv-z]{4}-?[0-9A-TV-Za-tv-z]{4})$";

/// A second-factor code: TOTP or recovery.
pub struct SecondFactor;

impl TextKind for SecondFactor {
    const NAME: &'static str = "second_factor";
    const MAX_CHARS: usize = 64;
    fn schema() -> MetaSchema {
        pattern(SECOND_FACTOR_PATTERN)
    }
}

/// A refresh or reset token: 256 random bits in base64url without padding
/// (43 characters; the last one carries 4 bits, hence its short alphabet).
pub struct Token;

impl TextKind for Token {
    const NAME: &'static str = "token";
    const MAX_CHARS: usize = 256;
    fn schema() -> MetaSchema {
        pattern(TOKEN_PATTERN)
    }
}

/// A referral code: 8 characters of an alphabet without look-alikes,
/// case-insensitive.
pub struct ReferralCode;

impl TextKind for ReferralCode {
    const NAME: &'static str = "referral_code";
    const MAX_CHARS: usize = 64;
    fn schema() -> MetaSchema {
        pattern(REFERRAL_CODE_PATTERN)
    }
}

/// A display name: at most 100 characters once HTML is stripped.
pub struct Name;

impl TextKind for Name {
    const NAME: &'static str = "name";
    // Markup around a 100-character name is stripped, not counted.
    const MAX_CHARS: usize = 1000;
    fn schema() -> MetaSchema {
        string(None, 100)
    }
}

/// The kind of a JSON value, without the value itself.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::{OpaqueToken, VerificationCode};
    use crate::domain::mfa::{RecoveryCode, SecondFactorCode};
    use crate::domain::referral::ReferralCode as Referral;

    fn matches(kind: MetaSchema, value: &str) -> bool {
        let pattern = kind.pattern.expect("a pattern");
        regex::Regex::new(&pattern)
            .expect("the pattern compiles")
            .is_match(value)
    }

    #[test]
    fn generated_secrets_match_the_patterns_the_spec_states() {
        for _ in 0..200 {
            let token = OpaqueToken::generate();
            assert!(
                matches(Token::schema(), token.expose()),
                "{}",
                token.expose()
            );
            let code = VerificationCode::generate();
            assert!(matches(Code::schema(), code.expose()));
            let recovery = RecoveryCode::generate().display();
            assert!(matches(SecondFactor::schema(), &recovery), "{recovery}");
            let referral = Referral::generate();
            assert!(matches(ReferralCode::schema(), referral.as_str()));
            assert!(matches(
                ReferralCode::schema(),
                &referral.as_str().to_lowercase()
            ));
        }
    }

    /// Strings matching a whole-string pattern (proptest takes no anchors).
    fn matching(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
        let body = pattern.trim_start_matches('^').trim_end_matches('$');
        proptest::string::string_regex(body).expect("a regex")
    }

    proptest::proptest! {
        #[test]
        fn every_string_the_patterns_allow_is_one_the_domain_accepts(
            token in matching(TOKEN_PATTERN),
            code in matching(CODE_PATTERN),
            referral in matching(REFERRAL_CODE_PATTERN),
            second_factor in matching(SECOND_FACTOR_PATTERN),
        ) {
            proptest::prop_assert!(SecondFactorCode::parse(&second_factor).is_some(), "{}", second_factor);
            proptest::prop_assert!(OpaqueToken::parse(&token).is_some(), "{}", token);
            proptest::prop_assert!(VerificationCode::parse(&code).is_some(), "{}", code);
            proptest::prop_assert!(Referral::parse(&referral).is_some(), "{}", referral);
        }
    }

    #[test]
    fn tokens_whose_last_character_carries_stray_bits_are_outside_the_pattern() {
        for refused in "BCDFZbdz19_-".chars() {
            let token = format!("{}{refused}", "A".repeat(42));
            assert!(!matches(Token::schema(), &token), "{token}");
            assert!(OpaqueToken::parse(&token).is_none(), "{token}");
        }
    }

    #[test]
    fn a_value_over_the_cap_is_refused_without_repeating_it() {
        let long = "s3cret".repeat(200);
        let err =
            Text::<Password>::parse_from_json(Some(Value::String(long))).expect_err("refused");
        assert!(!err.message().contains("s3cret"), "{}", err.message());
        let ok = Text::<Password>::parse_from_json(Some(Value::String("x".repeat(1024))));
        assert!(ok.is_ok());
    }
}
