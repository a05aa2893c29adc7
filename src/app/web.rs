//! `mjlink serve`: the web gallery of the database and the archive.

use std::io::Write;

use anyhow::Context;

use super::{shutdown_signal, Outcome};
use crate::config::Config;
use crate::store::Store;
use crate::web::{self, WebOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Listen on this address and port instead of web.bind (default 127.0.0.1:8080). An
    /// address other machines can reach is refused unless web.token is set.
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<String>,
}

/// The gallery served beside the live bot (`run` with `web.enabled`).
pub struct Beside(web::Serving);

impl Beside {
    /// Listens on `web.bind` (the database is created first, as `run` would) and serves in a
    /// task; the address goes to the log.
    pub async fn start(config: &Config) -> anyhow::Result<Beside> {
        let options = WebOptions::from_config(config, None).map_err(anyhow::Error::msg)?;
        drop(Store::open(&options.database)?);
        let listener = tokio::net::TcpListener::bind(options.bind)
            .await
            .with_context(|| format!("cannot listen on {} (web.bind)", options.bind))?;
        let serving =
            web::Serving::spawn(listener, options).context("cannot read the address listened on")?;
        tracing::info!(url = %format!("http://{}/", serving.address), "serving the web gallery beside the bot");
        Ok(Beside(serving))
    }

    /// Stops serving (open pages' live streams end first) and waits for the server.
    pub async fn stop(self) {
        if let Err(error) = self.0.stop().await {
            tracing::warn!(error = %error, "the web gallery stopped with an error");
        }
    }
}

/// Serves the gallery until Ctrl-C or SIGTERM; prints its address first.
pub async fn serve(config: &Config, args: &ServeArgs, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let options = WebOptions::from_config(config, args.bind.as_deref()).map_err(anyhow::Error::msg)?;
    if !options.database.exists() {
        anyhow::bail!(
            "no database at {} (run `mjlink replay` first, or pass --db)",
            options.database.display()
        );
    }
    // Opened once here so that a database this build cannot read fails now, in one line.
    drop(Store::open(&options.database)?);
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .with_context(|| format!("cannot listen on {}", options.bind))?;
    let address = listener
        .local_addr()
        .context("cannot read the address listened on")?;
    writeln!(
        out,
        "Serving the gallery of {} on http://{address}/ (Ctrl-C stops)",
        options.database.display()
    )?;
    out.flush()?;
    web::serve(listener, &options, shutdown_signal())
        .await
        .context("the web server stopped")?;
    Ok(Outcome::Success)
}
