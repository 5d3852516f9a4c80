//! TLS as the connection string asks for it: `sslmode` and `sslrootcert` read here, the
//! connections made in `tls_rustls` (the crate's `tls` feature).

use std::path::PathBuf;

use crate::error::{PgError, PgResult};

/// What the connection string's `sslmode` asks for. `disable`, `allow` and `prefer` (and
/// no `sslmode`) connect in plain text: the source never negotiates down from TLS, so a
/// host that wants TLS names `require` or stricter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Plain text.
    Disable,
    /// Encrypted; the server's certificate is not checked (libpq's `require` without a
    /// root certificate).
    Require,
    /// Encrypted; the certificate must chain to `sslrootcert`, any host name.
    VerifyCa,
    /// Encrypted; the certificate must chain to `sslrootcert` and name the host.
    VerifyFull,
}

/// The TLS options taken out of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsOptions {
    pub(crate) mode: TlsMode,
    pub(crate) root_cert: Option<PathBuf>,
}

/// Splits `sslmode` and `sslrootcert` off a connection string (tokio-postgres knows
/// neither `verify-ca`/`verify-full` nor `sslrootcert`), returning the rest unchanged in
/// meaning. Both forms: `key=value ...` and `postgres://...?key=value&...`.
pub(crate) fn split_tls_options(text: &str) -> PgResult<(String, TlsOptions)> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> PgResult<bool> {
        match key {
            "sslmode" => {
                mode = Some(match value {
                    "disable" | "allow" | "prefer" => TlsMode::Disable,
                    "require" => TlsMode::Require,
                    "verify-ca" => TlsMode::VerifyCa,
                    "verify-full" => TlsMode::VerifyFull,
                    other => {
                        return Err(PgError::Config(format!("unknown sslmode '{other}'")));
                    }
                });
                Ok(true)
            }
            "sslrootcert" => {
                root_cert = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    let rest = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        match text.split_once('?') {
            None => text.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, &percent_decode(value)?)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for (key, value) in key_values(text)? {
            if !take(&key, &value)? {
                kept.push(format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                ));
            }
        }
        kept.join(" ")
    };
    let mode = match (mode.unwrap_or(TlsMode::Disable), &root_cert) {
        // libpq: `require` with a root certificate verifies the chain, like verify-ca.
        (TlsMode::Require, Some(_)) => TlsMode::VerifyCa,
        (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => {
            return Err(PgError::Config(
                "sslmode verify-ca and verify-full need sslrootcert (the CA's PEM file)".into(),
            ))
        }
        (mode, _) => mode,
    };
    Ok((rest, TlsOptions { mode, root_cert }))
}

/// Reads `key = value` pairs the way libpq does: values in single quotes may hold spaces,
/// a backslash escapes the next character.
fn key_values(text: &str) -> PgResult<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(PgError::Config(format!(
                "connection string: '{key}' has no value"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(PgError::Config(format!(
                            "connection string: unterminated quote in '{key}'"
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

fn percent_decode(text: &str) -> PgResult<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| PgError::Config(format!("bad percent escape in '{text}'")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PgError::Config(format!("'{text}' is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_split_off_both_forms() {
        let (rest, tls) = split_tls_options(
            "host=db port=5432 password='a b\\'c' sslmode=verify-full sslrootcert=/ca.pem",
        )
        .unwrap();
        assert_eq!(rest, "host='db' port='5432' password='a b\\'c'");
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca.pem")));
        let (rest, tls) = split_tls_options(
            "postgres://u:p@db/app?sslmode=require&application_name=x&sslrootcert=%2Fca%20x.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://u:p@db/app?application_name=x");
        assert_eq!(
            tls.mode,
            TlsMode::VerifyCa,
            "require with a root cert verifies"
        );
        assert_eq!(tls.root_cert, Some(PathBuf::from("/ca x.pem")));
        let (_, tls) = split_tls_options("host=db sslmode=prefer").unwrap();
        assert_eq!(tls.mode, TlsMode::Disable);
        let (_, tls) = split_tls_options("host=db").unwrap();
        assert_eq!(tls.mode, TlsMode::Disable);
        assert!(matches!(
            split_tls_options("host=db sslmode=verify-full"),
            Err(PgError::Config(_))
        ));
        assert!(matches!(
            split_tls_options("host=db sslmode=sometimes"),
            Err(PgError::Config(_))
        ));
        assert!(matches!(
            split_tls_options("host='db"),
            Err(PgError::Config(_))
        ));
    }
}
