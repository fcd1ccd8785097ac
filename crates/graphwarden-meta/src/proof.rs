//! `appsecret_proof` (`meta-graph-reference.md` §5): lower-case hex HMAC-SHA256 of the access
//! token under the app secret; the timed form signs `token|unix_time`.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

fn hmac_hex(key: &str, message: &str) -> String {
    match <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this branch cannot run.
        Err(_) => String::new(),
    }
}

/// The classic proof every official SDK sends.
pub fn classic(app_secret: &SecretString, token: &SecretString) -> String {
    hmac_hex(app_secret.expose_secret(), token.expose_secret())
}

/// The timed proof of the current Login Security doc; send `appsecret_time` with it.
pub fn timed(app_secret: &SecretString, token: &SecretString, unix_time: i64) -> String {
    hmac_hex(
        app_secret.expose_secret(),
        &format!("{}|{unix_time}", token.expose_secret()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        let secret = SecretString::from("foo_app_secret");
        let token = SecretString::from("foo_token");
        assert_eq!(
            classic(&secret, &token),
            "857d5f035a894f16b4180f19966e055cdeab92d4d53017b13dccd6d43b6497af"
        );
        assert_eq!(
            timed(&secret, &token, 1_700_000_000),
            "a53b3cdf822ede8ad6f3cbc825d833757fa8ad3b99a9c9ac6ed6aeae17c605fb"
        );
    }
}
