//! Logging: `tracing` everywhere, one subscriber set up here. `HUIYIN_LOG` (an `EnvFilter`
//! directive, default `info`) picks what is logged, `HUIYIN_LOG_FORMAT=json` switches to JSON
//! lines. No personal data is ever put into a span or an event.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_env("HUIYIN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("HUIYIN_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
