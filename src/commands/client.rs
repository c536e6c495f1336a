//! Flags of the OpenAI-compatible client shared by `eval --endpoint` and `data distill
//! --teacher`, and the [`Endpoint`] they build.

use std::time::Duration;

use anyhow::bail;
use safeaware_eval::decoding::DecodingSettings;
use safeaware_eval::source::endpoint::{Endpoint, EndpointConfig};

/// How requests to an endpoint are made.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Requests in flight at once (endpoint).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Seconds one request may take (endpoint).
    #[arg(long, default_value_t = 120.0)]
    pub timeout: f64,
    /// Retries after a 429, 5xx or connection error, with exponential backoff (endpoint).
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
}

impl ClientArgs {
    /// The endpoint at `url` serving `model`, asked with `decoding`; the API key is read from
    /// OPENAI_API_KEY if set.
    pub fn endpoint(
        &self,
        url: &str,
        model: &str,
        decoding: &DecodingSettings,
    ) -> anyhow::Result<Endpoint> {
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            bail!("--timeout must be a positive number of seconds");
        }
        let mut config = EndpointConfig::new(url, model);
        config.api_key = std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty());
        config.concurrency = self.concurrency;
        config.timeout = Duration::from_secs_f64(self.timeout);
        config.retries = self.retries;
        config.decoding = decoding.clone();
        Ok(Endpoint::new(config)?)
    }
}
