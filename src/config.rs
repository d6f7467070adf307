//! Settings from the environment (the seed's variable names), validated at start-up. A bad
//! value fails fast with an error that names the variable.

use std::path::PathBuf;

/// Default HTTP port (`APP_PORT`).
pub const DEFAULT_PORT: u16 = 8080;
/// Default directory for recordings (`RECORDINGS_DIR`).
pub const DEFAULT_RECORDINGS_DIR: &str = "./recordings";

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HTTP port (`APP_PORT`, default 8080).
    pub app_port: u16,
    /// tracing filter (`LOG_LEVEL`, default `info`; any `EnvFilter` directive).
    pub log_level: String,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Where recordings are written (`RECORDINGS_DIR`, default `./recordings`).
    pub recordings_dir: PathBuf,
}

/// A setting with a value we cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let bad = |name, value: String, reason| ConfigError { name, value, reason };
        let app_port = match get("APP_PORT") {
            None => DEFAULT_PORT,
            Some(v) => v.trim().parse().map_err(|_| bad("APP_PORT", v, "expected a port number 0-65535"))?,
        };
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(v) => return Err(bad("LOG_FORMAT", v.to_string(), "expected `text` or `json`")),
        };
        let log_level = get("LOG_LEVEL").filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(bad(
                "LOG_LEVEL",
                log_level,
                "expected a level (error, warn, info, debug, trace) or filter directives",
            ));
        }
        let recordings_dir = match get("RECORDINGS_DIR") {
            None => PathBuf::from(DEFAULT_RECORDINGS_DIR),
            Some(v) if v.trim().is_empty() => return Err(bad("RECORDINGS_DIR", v, "must not be empty")),
            Some(v) => PathBuf::from(v),
        };
        Ok(Config { app_port, log_level, log_format, recordings_dir })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.app_port, DEFAULT_PORT);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.recordings_dir, PathBuf::from("./recordings"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = load(&[("APP_PORT", "80a")]).unwrap_err();
        assert_eq!(e.name, "APP_PORT");
        assert!(e.to_string().contains("APP_PORT=\"80a\""), "{e}");
        assert_eq!(load(&[("LOG_FORMAT", "xml")]).unwrap_err().name, "LOG_FORMAT");
        assert_eq!(load(&[("LOG_LEVEL", "info,,=[")]).unwrap_err().name, "LOG_LEVEL");
        assert_eq!(load(&[("RECORDINGS_DIR", " ")]).unwrap_err().name, "RECORDINGS_DIR");
    }

    #[test]
    fn values_are_read() {
        let c = load(&[("APP_PORT", "9000"), ("LOG_FORMAT", "json"), ("RECORDINGS_DIR", "/data")]).unwrap();
        assert_eq!((c.app_port, c.log_format), (9000, LogFormat::Json));
        assert_eq!(c.recordings_dir, PathBuf::from("/data"));
    }
}
