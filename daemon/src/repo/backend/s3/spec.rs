//! Where an S3 repository is, as users write it and the registry stores it:
//! `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&allow-http=1&virtual-hosted=1&credentials=NAME]`.
//!
//! The endpoint, region and addressing style are part of the location because they decide which
//! store the bucket name means. Secrets never are: `credentials` names a file the daemon keeps
//! under its state directory (0600), never its contents.

use std::fmt;

/// An S3 (or S3-compatible) repository location.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct S3Spec {
    pub bucket: String,
    /// Objects live under `PREFIX/`; empty for the bucket's root. No leading or trailing `/`.
    pub prefix: String,
    /// `None`: AWS (or `AWS_ENDPOINT_URL` in the daemon's environment).
    pub endpoint: Option<String>,
    /// `None`: `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Plain HTTP to a non-loopback endpoint (loopback is always allowed).
    pub allow_http: bool,
    /// `bucket.host/key` addressing instead of `host/bucket/key` (the default, which every
    /// S3-compatible server understands).
    pub virtual_hosted: bool,
    /// The name of the credentials file the daemon stored for this repository (`None`: the
    /// daemon's environment or its AWS shared credentials file).
    pub credentials: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("S3 location {text:?}: {reason}; write it as s3://BUCKET/PREFIX")]
    Invalid { text: String, reason: String },
    #[error(
        "S3 location {text:?}: unknown option {option:?}; the options are endpoint, region, \
         allow-http, virtual-hosted and credentials"
    )]
    UnknownOption { text: String, option: String },
    #[error(
        "S3 location {text:?}: the endpoint {endpoint} is plain HTTP to a host that is not this \
         machine; credentials and data would cross the network unprotected. Use https, or pass \
         --allow-http if the network is trusted"
    )]
    PlainHttp { text: String, endpoint: String },
}

/// Whether a URL's host is this machine (plain HTTP to it never leaves the host).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// S3's bucket naming rules (the subset every implementation enforces).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && b.as_bytes()[0].is_ascii_alphanumeric()
        && b.as_bytes()[b.len() - 1].is_ascii_alphanumeric()
}

impl S3Spec {
    /// Parses `s3://...` (the scheme already recognised by the caller).
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let invalid = |reason: &str| SpecError::Invalid {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        // Checked on the text: the URL parser would resolve `..` away silently.
        let raw_path = text
            .get("s3://".len()..)
            .unwrap_or_default()
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        let bad_part = |p: &str| p.is_empty() || p == "." || p == "..";
        if raw_path
            .trim_end_matches('/')
            .split('/')
            .skip(1)
            .any(bad_part)
        {
            return Err(invalid(
                "the prefix must not contain empty, '.' or '..' parts",
            ));
        }
        let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "s3" {
            return Err(invalid("the scheme must be s3"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials do not belong in the location; use --credentials-file or the \
                 daemon's AWS environment",
            ));
        }
        let bucket = url.host_str().unwrap_or_default().to_owned();
        if !valid_bucket(&bucket) {
            return Err(invalid(&format!(
                "{bucket:?} is not a valid bucket name (3 to 63 lowercase letters, digits, '-' \
                 and '.')"
            )));
        }
        if url.port().is_some() {
            return Err(invalid(
                "a port belongs to the endpoint (?endpoint=http://host:port), not the bucket",
            ));
        }
        let prefix = url.path().trim_matches('/').to_owned();
        if prefix.split('/').any(|p| p == "." || p == "..")
            || prefix.contains("//")
            || prefix.contains(['\\', '\0'])
        {
            return Err(invalid(
                "the prefix must not contain empty, '.' or '..' parts",
            ));
        }
        let mut spec = Self {
            bucket,
            prefix,
            endpoint: None,
            region: None,
            allow_http: false,
            virtual_hosted: false,
            credentials: None,
        };
        let flag = |v: &str| matches!(v, "1" | "true" | "yes" | "");
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "endpoint" => spec.endpoint = Some(v.trim_end_matches('/').to_owned()),
                "region" => spec.region = Some(v.into_owned()),
                "allow-http" => spec.allow_http = flag(&v),
                "virtual-hosted" => spec.virtual_hosted = flag(&v),
                "credentials" => {
                    let ok = !v.is_empty()
                        && v.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
                        && !v.starts_with('.');
                    if !ok {
                        return Err(invalid("the credentials name is not a plain file name"));
                    }
                    spec.credentials = Some(v.into_owned());
                }
                other => {
                    return Err(SpecError::UnknownOption {
                        text: text.to_owned(),
                        option: other.to_owned(),
                    })
                }
            }
        }
        spec.validate_endpoint(text)?;
        Ok(spec)
    }

    fn validate_endpoint(&self, text: &str) -> Result<(), SpecError> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(());
        };
        let url = url::Url::parse(endpoint).map_err(|e| SpecError::Invalid {
            text: text.to_owned(),
            reason: format!("the endpoint {endpoint:?} is not a URL ({e})"),
        })?;
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_http || is_loopback(&url) => Ok(()),
            "http" => Err(SpecError::PlainHttp {
                text: text.to_owned(),
                endpoint: endpoint.clone(),
            }),
            other => Err(SpecError::Invalid {
                text: text.to_owned(),
                reason: format!("the endpoint's scheme {other:?} is neither http nor https"),
            }),
        }
    }

    /// Whether plain HTTP may be used (to loopback, or as the user allowed).
    pub fn http_allowed(&self) -> bool {
        self.allow_http
            || self
                .endpoint
                .as_deref()
                .and_then(|e| url::Url::parse(e).ok())
                .is_some_and(|u| is_loopback(&u))
    }

    /// The text form [`Self::parse`] reads back.
    pub fn to_text(&self) -> String {
        let mut out = format!("s3://{}", self.bucket);
        if !self.prefix.is_empty() {
            out.push('/');
            out.push_str(&self.prefix);
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if let Some(e) = &self.endpoint {
            query.append_pair("endpoint", e);
        }
        if let Some(r) = &self.region {
            query.append_pair("region", r);
        }
        if self.allow_http {
            query.append_pair("allow-http", "1");
        }
        if self.virtual_hosted {
            query.append_pair("virtual-hosted", "1");
        }
        if let Some(c) = &self.credentials {
            query.append_pair("credentials", c);
        }
        let query = query.finish();
        if !query.is_empty() {
            out.push('?');
            out.push_str(&query);
        }
        out
    }

    /// The object name of `name` under the prefix.
    pub fn object(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }

    /// The same repository without the credentials reference (what identifies the store).
    pub fn without_credentials(&self) -> Self {
        Self {
            credentials: None,
            ..self.clone()
        }
    }
}

impl fmt::Display for S3Spec {
    /// The bucket and prefix with the endpoint, as messages name the repository.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        if let Some(e) = &self.endpoint {
            write!(f, " at {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_through_their_text() {
        let s = S3Spec::parse(
            "s3://backups/hosts/web1?endpoint=http://127.0.0.1:9000/&region=eu-west-1&credentials=web.s3",
        )
        .expect("parses");
        assert_eq!(s.bucket, "backups");
        assert_eq!(s.prefix, "hosts/web1");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.credentials.as_deref(), Some("web.s3"));
        assert!(s.http_allowed(), "loopback may be plain HTTP");
        assert_eq!(S3Spec::parse(&s.to_text()), Ok(s.clone()));
        assert_eq!(s.object("config"), "hosts/web1/config");
        assert_eq!(
            s.to_string(),
            "s3://backups/hosts/web1 at http://127.0.0.1:9000"
        );
        let root = S3Spec::parse("s3://backups").expect("bucket root");
        assert_eq!(root.prefix, "");
        assert_eq!(root.object("config"), "config");
    }

    #[test]
    fn bad_locations_say_what_is_wrong() {
        let cases = [
            ("s3://Bad_Bucket/p", "not a valid bucket name"),
            ("s3://ab/p", "not a valid bucket name"),
            ("s3://key:secret@bucket/p", "credentials do not belong"),
            ("s3://bucket:9000/p", "a port belongs to the endpoint"),
            ("s3://bucket/a/../b", "must not contain"),
            ("s3://bucket/p?colour=blue", "unknown option"),
            ("s3://bucket/p?endpoint=ftp://x", "neither http nor https"),
            (
                "s3://bucket/p?credentials=../../etc/shadow",
                "plain file name",
            ),
            ("s3://bucket/p?endpoint=http://s3.example.net", "plain HTTP"),
        ];
        for (text, want) in cases {
            let e = S3Spec::parse(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(
            S3Spec::parse("s3://bucket/p?endpoint=http://s3.example.net&allow-http=1").is_ok(),
            "plain HTTP when the user allows it"
        );
    }
}
