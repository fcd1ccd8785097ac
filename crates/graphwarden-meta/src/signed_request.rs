//! Meta's `signed_request` (`meta-graph-reference.md` §6.2): what the de-authorize and
//! data-deletion callbacks POST. `<signature>.<payload>`, both base64url; the signature is the
//! raw HMAC-SHA256 of the payload segment, exactly as sent, under the app secret.
//!
//! Parsing is tolerant of what real senders do (padding or none, the standard alphabet as Meta's
//! PHP and JS samples accept it, `user_id` as a string or a number) and strict about what
//! matters: the algorithm must be HMAC-SHA256, the signature is compared in constant time, and
//! inputs larger than [`MAX_SIGNED_REQUEST_LEN`] are refused before any decoding.
//!
//! Errors and `Debug` output never carry the app secret, the input, or payload values: a
//! login-flavoured `signed_request` may hold an `oauth_token` or a `code`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::Sha256;

/// The one algorithm Meta uses and the only one accepted (compared case-insensitively).
pub const SIGNED_REQUEST_ALGORITHM: &str = "HMAC-SHA256";

/// Inputs longer than this (in bytes) are refused before decoding. Meta's payloads are a few
/// hundred bytes.
pub const MAX_SIGNED_REQUEST_LEN: usize = 16 * 1024;

/// The longest algorithm name an error repeats; the rest is cut off.
const MAX_ALGORITHM_ECHO: usize = 32;

/// Why a `signed_request` was refused. The messages never repeat the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    /// Not shaped like a `signed_request`: no `.`, an empty part, bad base64, a payload that is
    /// not a JSON object, no usable `user_id`. The reason is fixed text.
    #[error("the signed_request is malformed: {0}")]
    Malformed(&'static str),
    /// The payload names another algorithm, or none. Holds what it named (shortened, printable
    /// ASCII only; empty when it named none).
    #[error("the signed_request uses algorithm `{0}`; only HMAC-SHA256 is accepted")]
    BadAlgorithm(String),
    /// The signature does not match the payload under this app secret: forged, tampered with,
    /// or signed with another app's (or a reset) secret.
    #[error("the signed_request's signature does not match the app secret")]
    BadSignature,
    /// Longer than [`MAX_SIGNED_REQUEST_LEN`] bytes.
    #[error("the signed_request is longer than {MAX_SIGNED_REQUEST_LEN} bytes")]
    TooLarge,
}

/// A verified `signed_request` payload.
#[derive(Clone, PartialEq)]
pub struct SignedRequest {
    /// The app-scoped user id; Meta sends it as a string or a number.
    pub user_id: String,
    /// As sent (any case of `HMAC-SHA256`).
    pub algorithm: String,
    /// Unix seconds, when the payload carries `issued_at`.
    pub issued_at: Option<i64>,
    /// The whole decoded payload, for anything else (`expires`, `oauth_token`, …).
    pub payload: Value,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys only: values such as `oauth_token` or `code` are secrets.
        let keys: Vec<&str> = self
            .payload
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        f.debug_struct("SignedRequest")
            .field("user_id", &self.user_id)
            .field("algorithm", &self.algorithm)
            .field("issued_at", &self.issued_at)
            .field("payload_keys", &keys)
            .finish()
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(app_secret: &str) -> Result<HmacSha256, SignedRequestError> {
    // HMAC takes keys of any length; the error branch cannot run.
    <HmacSha256 as Mac>::new_from_slice(app_secret.as_bytes())
        .map_err(|_| SignedRequestError::BadSignature)
}

/// Decode one segment: base64url or standard alphabet, padded or not.
fn decode_segment(segment: &str) -> Option<Vec<u8>> {
    let unpadded = segment.trim_end_matches('=');
    // At most two `=` of padding exist in base64.
    if segment.len() - unpadded.len() > 2 {
        return None;
    }
    let url_safe: String = unpadded
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(url_safe).ok()
}

/// What an error may repeat of an algorithm name: short, printable ASCII.
fn algorithm_echo(name: &str) -> String {
    name.chars()
        .take(MAX_ALGORITHM_ECHO)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

fn user_id(payload: &Map<String, Value>) -> Result<String, SignedRequestError> {
    match payload.get("user_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| n.to_string())
            .or_else(|| n.as_i64().map(|n| n.to_string()))
            .ok_or(SignedRequestError::Malformed(
                "`user_id` is not a whole number",
            )),
        Some(Value::String(_)) => Err(SignedRequestError::Malformed("`user_id` is empty")),
        Some(_) => Err(SignedRequestError::Malformed(
            "`user_id` is neither a string nor a number",
        )),
        None => Err(SignedRequestError::Malformed(
            "the payload has no `user_id`",
        )),
    }
}

fn issued_at(payload: &Map<String, Value>) -> Result<Option<i64>, SignedRequestError> {
    match payload.get("issued_at") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(SignedRequestError::Malformed(
            "`issued_at` is not a whole number",
        )),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| SignedRequestError::Malformed("`issued_at` is not a whole number")),
        Some(_) => Err(SignedRequestError::Malformed(
            "`issued_at` is not a whole number",
        )),
    }
}

/// Verify and decode a `signed_request` as Meta POSTs it to a callback.
///
/// Splits on the first `.`; decodes both parts (base64url or standard alphabet, padded or not);
/// requires a JSON object payload whose `algorithm` is `HMAC-SHA256` (a missing algorithm is
/// refused); checks the signature over the payload segment exactly as received, in constant
/// time; and requires a `user_id`. Surrounding ASCII whitespace is ignored.
pub fn parse_signed_request(
    input: &str,
    app_secret: &SecretString,
) -> Result<SignedRequest, SignedRequestError> {
    if input.len() > MAX_SIGNED_REQUEST_LEN {
        return Err(SignedRequestError::TooLarge);
    }
    let input = input.trim_ascii();
    let Some((sig_segment, payload_segment)) = input.split_once('.') else {
        return Err(SignedRequestError::Malformed("there is no `.`"));
    };
    if sig_segment.is_empty() {
        return Err(SignedRequestError::Malformed("the signature is empty"));
    }
    if payload_segment.is_empty() {
        return Err(SignedRequestError::Malformed("the payload is empty"));
    }
    let signature = decode_segment(sig_segment)
        .ok_or(SignedRequestError::Malformed("the signature is not base64"))?;
    let payload_bytes = decode_segment(payload_segment)
        .ok_or(SignedRequestError::Malformed("the payload is not base64"))?;
    let payload: Value = serde_json::from_slice(&payload_bytes)
        .map_err(|_| SignedRequestError::Malformed("the payload is not JSON"))?;
    let Value::Object(fields) = &payload else {
        return Err(SignedRequestError::Malformed(
            "the payload is not a JSON object",
        ));
    };
    // The algorithm before the signature, as the PHP SDK does: a payload that names another
    // algorithm is refused for that reason, whatever its signature.
    let algorithm = match fields.get("algorithm") {
        Some(Value::String(a)) if a.eq_ignore_ascii_case(SIGNED_REQUEST_ALGORITHM) => a.clone(),
        Some(Value::String(a)) => return Err(SignedRequestError::BadAlgorithm(algorithm_echo(a))),
        Some(other) => {
            return Err(SignedRequestError::BadAlgorithm(algorithm_echo(
                &other.to_string(),
            )));
        }
        None => return Err(SignedRequestError::BadAlgorithm(String::new())),
    };
    let mut mac = mac(app_secret.expose_secret())?;
    mac.update(payload_segment.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| SignedRequestError::BadSignature)?;
    Ok(SignedRequest {
        user_id: user_id(fields)?,
        algorithm,
        issued_at: issued_at(fields)?,
        payload: payload.clone(),
    })
}

/// A valid `signed_request` for `payload` under `app_secret`, as Meta makes them: unpadded
/// base64url, `"algorithm":"HMAC-SHA256"` added when the payload (an object) has none. For the
/// simulator and tests. A payload that is not an object is signed as it is, and
/// [`parse_signed_request`] will refuse it.
pub fn sign_request(payload: &Value, app_secret: &str) -> String {
    let mut payload = payload.clone();
    if let Value::Object(fields) = &mut payload {
        fields
            .entry("algorithm")
            .or_insert_with(|| Value::String(SIGNED_REQUEST_ALGORITHM.to_owned()));
    }
    sign_raw(payload.to_string().as_bytes(), app_secret)
}

fn sign_raw(payload: &[u8], app_secret: &str) -> String {
    let payload_segment = URL_SAFE_NO_PAD.encode(payload);
    let signature = match mac(app_secret) {
        Ok(mut mac) => {
            mac.update(payload_segment.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signature}.{payload_segment}")
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s)
    }

    fn parse(input: &str) -> Result<SignedRequest, SignedRequestError> {
        parse_signed_request(input, &secret(SECRET))
    }

    /// Sign exact payload bytes, with no `algorithm` added.
    fn sign_bytes(payload: &[u8]) -> String {
        sign_raw(payload, SECRET)
    }

    #[test]
    fn a_signed_request_round_trips() {
        let signed = sign_request(
            &json!({ "user_id": "42", "issued_at": 1_700_000_000 }),
            SECRET,
        );
        assert!(!signed.contains('='), "unpadded, as Meta sends it");
        let parsed = parse(&signed).unwrap();
        assert_eq!(parsed.user_id, "42");
        assert_eq!(parsed.algorithm, "HMAC-SHA256");
        assert_eq!(parsed.issued_at, Some(1_700_000_000));
        assert_eq!(parsed.payload["algorithm"], "HMAC-SHA256");
    }

    #[test]
    fn a_data_deletion_shaped_payload_keeps_its_other_fields() {
        let payload = json!({
            "algorithm": "HMAC-SHA256",
            "expires": 1_291_840_400,
            "issued_at": 1234,
            "user_id": "100000000000101",
        });
        let parsed = parse(&sign_request(&payload, SECRET)).unwrap();
        assert_eq!(parsed.user_id, "100000000000101");
        assert_eq!(parsed.issued_at, Some(1234));
        assert_eq!(parsed.payload["expires"], 1_291_840_400);
        assert_eq!(parsed.payload, payload);
    }

    #[test]
    fn numeric_user_ids_are_accepted() {
        let parsed = parse(&sign_request(
            &json!({ "user_id": 100_000_000_000_101_u64 }),
            SECRET,
        ))
        .unwrap();
        assert_eq!(parsed.user_id, "100000000000101");
        assert_eq!(parsed.issued_at, None);
    }

    #[test]
    fn the_reference_vectors_verify() {
        // §6.2 vector 1: php-graph-sdk, padded, numeric user id; the HMAC covers the padding.
        let php = "U0_O1MqqNKUt32633zAkdd2Ce-jGVgRgJeRauyx_zC8=.eyJvYXV0aF90b2tlbiI6ImZvb190b2tlbiIsImFsZ29yaXRobSI6IkhNQUMtU0hBMjU2IiwiaXNzdWVkX2F0IjozMjEsImNvZGUiOiJmb29fY29kZSIsInN0YXRlIjoiZm9vX3N0YXRlIiwidXNlcl9pZCI6MTIzLCJmb28iOiJiYXIifQ==";
        let parsed = parse_signed_request(php, &secret("foo_app_secret")).unwrap();
        assert_eq!(parsed.user_id, "123");
        assert_eq!(parsed.issued_at, Some(321));
        assert_eq!(parsed.payload["foo"], "bar");
        // §6.2 vector 2: bk-rs, unpadded, string user id.
        let rs = "Mf_s6nTb38UYqioBmPqu0Ewm9souPZB9I2fIGwV729U.eyJ1c2VyX2lkIjoiMCIsImFsZ29yaXRobSI6IkhNQUMtU0hBMjU2IiwiaXNzdWVkX2F0IjoxNjI0MjQ0MTU2fQ";
        let parsed = parse_signed_request(rs, &secret("key")).unwrap();
        assert_eq!(parsed.user_id, "0");
        assert_eq!(parsed.issued_at, Some(1_624_244_156));
    }

    #[test]
    fn padded_unpadded_and_standard_alphabet_all_verify() {
        // Payload bytes chosen so both alphabets and both paddings show up.
        let payload = br#"{"algorithm":"HMAC-SHA256","user_id":"7","n":"~~~???>>>"}"#;
        let mac_over = |segment: &str| {
            let mut m = mac(SECRET).unwrap();
            m.update(segment.as_bytes());
            m.finalize().into_bytes()
        };
        for engine in [URL_SAFE_NO_PAD, URL_SAFE, STANDARD] {
            let segment = engine.encode(payload);
            let sig = engine.encode(mac_over(&segment));
            let parsed = parse(&format!("{sig}.{segment}"))
                .unwrap_or_else(|e| panic!("{sig}.{segment}: {e}"));
            assert_eq!(parsed.user_id, "7");
        }
        assert!(STANDARD.encode(payload).contains(['+', '/']));
        // Padding on the signature only, and surrounding whitespace.
        let plain = sign_bytes(payload);
        let (sig, segment) = plain.split_once('.').unwrap();
        assert!(parse(&format!("{sig}=.{segment}")).is_ok());
        assert!(parse(&format!("  {plain}\r\n")).is_ok());
        assert_eq!(
            parse(&format!("{sig}===.{segment}")),
            Err(SignedRequestError::Malformed("the signature is not base64"))
        );
    }

    #[test]
    fn a_wrong_secret_is_a_bad_signature() {
        let signed = sign_request(&json!({ "user_id": "1" }), "another secret");
        assert_eq!(parse(&signed), Err(SignedRequestError::BadSignature));
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let signed = sign_request(&json!({ "user_id": "1" }), SECRET);
        let (sig, _) = signed.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"algorithm":"HMAC-SHA256","user_id":"2"}"#);
        assert_eq!(
            parse(&format!("{sig}.{forged}")),
            Err(SignedRequestError::BadSignature)
        );
        // Re-encoding the same JSON with padding changes the signed text: refused too.
        let (sig, segment) = signed.split_once('.').unwrap();
        let padded = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(segment).unwrap());
        if padded != segment {
            assert_eq!(
                parse(&format!("{sig}.{padded}")),
                Err(SignedRequestError::BadSignature)
            );
        }
        // A truncated signature.
        let short = &sig[..40];
        assert_eq!(
            parse(&format!("{short}.{segment}")),
            Err(SignedRequestError::BadSignature)
        );
    }

    #[test]
    fn other_or_missing_algorithms_are_refused() {
        let sha1 = sign_request(&json!({ "algorithm": "HMAC-SHA1", "user_id": "1" }), SECRET);
        assert_eq!(
            parse(&sha1),
            Err(SignedRequestError::BadAlgorithm("HMAC-SHA1".into()))
        );
        let missing = sign_bytes(br#"{"user_id":"1"}"#);
        assert_eq!(
            parse(&missing),
            Err(SignedRequestError::BadAlgorithm(String::new()))
        );
        let number = sign_bytes(br#"{"algorithm":256,"user_id":"1"}"#);
        assert!(matches!(
            parse(&number),
            Err(SignedRequestError::BadAlgorithm(_))
        ));
        let lower = sign_bytes(br#"{"algorithm":"hmac-sha256","user_id":"1"}"#);
        assert_eq!(parse(&lower).unwrap().algorithm, "hmac-sha256");
        // What the error repeats is short and printable.
        let long = format!("X\n{}", "A".repeat(500));
        let hostile = sign_request(&json!({ "algorithm": long, "user_id": "1" }), SECRET);
        let Err(SignedRequestError::BadAlgorithm(echo)) = parse(&hostile) else {
            panic!("refused for its algorithm");
        };
        assert_eq!(echo.len(), MAX_ALGORITHM_ECHO);
        assert!(echo.starts_with("X?A"));
    }

    #[test]
    fn malformed_inputs_say_why_without_repeating_them() {
        let malformed = |input: &str| match parse(input) {
            Err(SignedRequestError::Malformed(reason)) => reason,
            other => panic!("{input:?} gave {other:?}"),
        };
        let valid = sign_request(&json!({ "user_id": "1" }), SECRET);
        let (sig, segment) = valid.split_once('.').unwrap();
        assert_eq!(malformed("no-dot-here"), "there is no `.`");
        assert_eq!(malformed(""), "there is no `.`");
        assert_eq!(malformed(&format!(".{segment}")), "the signature is empty");
        assert_eq!(malformed(&format!("{sig}.")), "the payload is empty");
        assert_eq!(
            malformed(&format!("{sig}.!!!!")),
            "the payload is not base64"
        );
        assert_eq!(
            malformed(&format!("a*b.{segment}")),
            "the signature is not base64"
        );
        assert_eq!(
            malformed(&sign_bytes(b"not json")),
            "the payload is not JSON"
        );
        assert_eq!(
            malformed(&sign_bytes(br#"[{"user_id":"1"}]"#)),
            "the payload is not a JSON object"
        );
        assert_eq!(
            malformed(&sign_request(&json!({ "issued_at": 1 }), SECRET)),
            "the payload has no `user_id`"
        );
        assert_eq!(
            malformed(&sign_request(&json!({ "user_id": "" }), SECRET)),
            "`user_id` is empty"
        );
        assert_eq!(
            malformed(&sign_request(&json!({ "user_id": 1.5 }), SECRET)),
            "`user_id` is not a whole number"
        );
        assert_eq!(
            malformed(&sign_request(&json!({ "user_id": ["1"] }), SECRET)),
            "`user_id` is neither a string nor a number"
        );
        assert_eq!(
            malformed(&sign_request(
                &json!({ "user_id": "1", "issued_at": "soon" }),
                SECRET
            )),
            "`issued_at` is not a whole number"
        );
        // The message names the problem, never the input.
        let message = parse("secretish-input-without-dot")
            .unwrap_err()
            .to_string();
        assert!(!message.contains("secretish"), "{message}");
    }

    #[test]
    fn oversized_inputs_are_refused_before_decoding() {
        let big = format!("{}.{}", "A".repeat(43), "B".repeat(20 * 1024));
        assert_eq!(parse(&big), Err(SignedRequestError::TooLarge));
        let no_dot = "x".repeat(MAX_SIGNED_REQUEST_LEN + 1);
        assert_eq!(parse(&no_dot), Err(SignedRequestError::TooLarge));
    }

    #[test]
    fn errors_and_debug_output_hold_no_secret_or_payload_values() {
        let payload = json!({ "user_id": "9", "oauth_token": "EAAsupersecret", "code": "c0de" });
        let parsed = parse(&sign_request(&payload, SECRET)).unwrap();
        let debug = format!("{parsed:?}");
        assert!(debug.contains("oauth_token"), "keys are shown: {debug}");
        assert!(
            !debug.contains("EAAsupersecret") && !debug.contains("c0de"),
            "{debug}"
        );
        for err in [
            SignedRequestError::Malformed("the payload is not JSON"),
            SignedRequestError::BadAlgorithm("HMAC-SHA1".into()),
            SignedRequestError::BadSignature,
            SignedRequestError::TooLarge,
        ] {
            let text = format!("{err} {err:?}");
            assert!(!text.contains(SECRET), "{text}");
        }
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            ".{0,40}".prop_map(Value::String),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(input in ".{0,300}") {
            let _ = parse(&input);
        }

        #[test]
        fn signed_request_shaped_input_never_panics(
            input in "[A-Za-z0-9+/_=-]{0,60}\\.[A-Za-z0-9+/_=.-]{0,200}",
        ) {
            let _ = parse(&input);
        }

        #[test]
        fn whatever_sign_request_signs_verifies(
            secret_text in ".{1,64}",
            numeric in any::<bool>(),
            id in 1u64..u64::MAX,
            issued_at in proptest::option::of(any::<i64>()),
            extra in proptest::collection::btree_map("[a-z_]{1,12}", json_leaf(), 0..6),
        ) {
            let mut payload: Map<String, Value> = extra
                .into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "user_id" | "issued_at" | "algorithm"))
                .collect();
            payload.insert(
                "user_id".into(),
                if numeric { Value::from(id) } else { Value::from(id.to_string()) },
            );
            if let Some(at) = issued_at {
                payload.insert("issued_at".into(), Value::from(at));
            }
            let payload = Value::Object(payload);
            let signed = sign_request(&payload, &secret_text);
            let parsed = parse_signed_request(&signed, &secret(&secret_text)).unwrap();
            prop_assert_eq!(parsed.user_id, id.to_string());
            prop_assert_eq!(parsed.issued_at, issued_at);
            let mut expected = payload.clone();
            expected["algorithm"] = Value::from("HMAC-SHA256");
            prop_assert_eq!(parsed.payload, expected);
        }
    }
}
