//! Reading secrets: from standard input, a file or an environment variable — never from the
//! command line, where they would land in shell history and `ps`.

use std::io::{IsTerminal, Read};
use std::path::Path;

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::exit::{self, CliError, CliResult};

/// More than any secret can be; stop reading there instead of filling memory.
const MAX_SECRET_INPUT: u64 = 64 * 1024;

/// Where a secret comes from.
#[derive(Debug, Clone)]
pub enum SecretSource<'a> {
    Stdin,
    File(&'a Path),
    Env(&'a str),
}

impl<'a> SecretSource<'a> {
    pub fn from_flags(file: Option<&'a Path>, env: Option<&'a str>) -> Self {
        match (file, env) {
            (Some(path), _) => Self::File(path),
            (None, Some(var)) => Self::Env(var),
            (None, None) => Self::Stdin,
        }
    }
}

/// Read `what` (e.g. "token") from `source`. Checks of the text itself happen in the store.
pub fn read_secret(what: &str, source: &SecretSource<'_>) -> CliResult<SecretString> {
    let text: Zeroizing<String> = match source {
        SecretSource::Stdin => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                let prompt = format!("Paste the {what} (input is hidden), then press Enter: ");
                Zeroizing::new(rpassword::prompt_password(prompt).map_err(|e| {
                    CliError::new(
                        exit::IO,
                        format!("could not read the {what} from the terminal: {e}"),
                    )
                })?)
            } else {
                read_limited(what, "standard input", stdin.lock())?
            }
        }
        SecretSource::File(path) => {
            let file = std::fs::File::open(path).map_err(|e| {
                let code = if e.kind() == std::io::ErrorKind::NotFound {
                    exit::NO_INPUT
                } else {
                    exit::IO
                };
                CliError::new(code, format!("could not open {}: {e}", path.display()))
            })?;
            read_limited(what, &path.display().to_string(), file)?
        }
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(value) => Zeroizing::new(value),
            Err(std::env::VarError::NotPresent) => {
                return Err(CliError::new(
                    exit::NO_INPUT,
                    format!("the environment variable `{var}` is not set"),
                ));
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(CliError::usage(format!(
                    "the environment variable `{var}` is not valid text"
                )));
            }
        },
    };
    Ok(SecretString::from(text.to_string()))
}

fn read_limited(what: &str, from: &str, reader: impl Read) -> CliResult<Zeroizing<String>> {
    let mut buf = Zeroizing::new(Vec::new());
    reader
        .take(MAX_SECRET_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| {
            CliError::new(
                exit::IO,
                format!("could not read the {what} from {from}: {e}"),
            )
        })?;
    if buf.len() as u64 > MAX_SECRET_INPUT {
        return Err(CliError::usage(format!(
            "{from} holds more than {MAX_SECRET_INPUT} bytes, far more than a {what}; pass only the {what}"
        )));
    }
    let text = std::str::from_utf8(&buf).map_err(|_| {
        CliError::usage(format!(
            "the {what} read from {from} is not text; Meta {what}s are plain ASCII"
        ))
    })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Ask a yes/no question on the terminal. Without a terminal, refuse and say which flag to use.
pub fn confirm(question: &str, flag: &str) -> CliResult<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::usage(format!(
            "{question} — no terminal to ask on; pass `{flag}` to confirm"
        )));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .map_err(|e| CliError::new(exit::IO, format!("could not read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
