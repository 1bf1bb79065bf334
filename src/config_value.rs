//! What the sections of the config are written in: `http(s)` URLs ([`HttpUrl`]),
//! humantime durations ([`duration`]), and the error of a value that is out of bounds
//! ([`Invalid`], named by its key's dotted path).
//!
//! Every component's `Config` takes these from here; the root `config` module assembles the
//! sections and reports its own errors (an unreadable file, bad TOML, a bad override). This
//! module imports nothing of the crate, so that no section has to import the root back.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A config value that is out of bounds, at its key's dotted path (e.g. `http.token`).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct Invalid {
    key: String,
    message: String,
}

impl Invalid {
    /// An invalid value at `key` (a dotted path).
    pub fn new(key: impl Into<String>, message: impl fmt::Display) -> Self {
        Invalid {
            key: key.into(),
            message: message.to_string(),
        }
    }
}

/// A `http(s)://` URL, rejected at load time otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub url::Url);

impl HttpUrl {
    /// Parses an absolute http or https URL.
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e}): {s:?}"))?;
        match url.scheme() {
            "http" | "https" => Ok(HttpUrl(url)),
            other => Err(format!("not an http(s) URL (scheme {other:?})")),
        }
    }

    /// The URL joined with `path` (a path relative to the URL's root, e.g. `jobs/overview`).
    pub fn join(&self, path: &str) -> url::Url {
        let mut base = self.0.clone();
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        base.join(path)
            .expect("a relative path joins onto an http URL")
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HttpUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Serde helper for `Duration` fields written as `"10s"`, `"1m 30s"`, `"250ms"`.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Deserializes a humantime duration, rejecting zero.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        let parsed = humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("not a duration ({e}): {s:?}")))?;
        if parsed.is_zero() {
            return Err(serde::de::Error::custom("must be greater than zero"));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_relative_paths() {
        let url = HttpUrl::parse("http://h:1/prefix").unwrap();
        assert_eq!(
            url.join("jobs/overview").as_str(),
            "http://h:1/prefix/jobs/overview"
        );
        assert!(HttpUrl::parse("ftp://h").is_err());
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        assert_eq!(
            Invalid::new("http.token", "must not be empty").to_string(),
            "http.token: must not be empty"
        );
    }
}
