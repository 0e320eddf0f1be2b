//! `disgrafs login`, and the token a client command sends: `--token`, `DISGRAFS_TOKEN`, or the
//! one `login` stored for the server in the user's config directory
//! (`$XDG_CONFIG_HOME/disgrafs/tokens.json`, mode 0600, in a directory of mode 0700).

use crate::ClientOpts;
use crate::admin::stdin_line;
use anyhow::Context;
use disgrafs_client::Client;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

fn tokens_file() -> anyhow::Result<PathBuf> {
    use etcetera::BaseStrategy;
    let base = etcetera::choose_base_strategy().context("no home directory for the config")?;
    Ok(base.config_dir().join("disgrafs").join("tokens.json"))
}

/// Servers are keyed without a trailing slash.
fn key(server: &str) -> String {
    server.trim_end_matches('/').to_owned()
}

fn load() -> BTreeMap<String, String> {
    tokens_file()
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The token for `opts`: the option or environment, else the stored one for its server.
pub fn token(opts: &ClientOpts) -> Option<String> {
    opts.token
        .clone()
        .or_else(|| load().remove(&key(&opts.server)))
}

/// Writes the tokens file whole: a new file created with mode 0600 (never readable by others,
/// not for a moment), then renamed over the old one.
fn save(map: &BTreeMap<String, String>) -> anyhow::Result<PathBuf> {
    let path = tokens_file()?;
    let dir = path.parent().expect("the file is in a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".tokens.json.{}", std::process::id()));
    std::fs::remove_file(&tmp).ok();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(map)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `disgrafs login --server URL [--user NAME]`: with `--user`, the password on standard input is
/// exchanged for a new API token; without, standard input holds a token. Either is checked with
/// the server, then stored for that server.
pub async fn run(opts: &ClientOpts, user: Option<&str>) -> anyhow::Result<()> {
    let token = match user {
        Some(user) => {
            let password = stdin_line("password")?;
            Client::new(&opts.server, None)?
                .issue_token(user, &password, None)
                .await?
                .token
        }
        None => match &opts.token {
            Some(t) => t.clone(),
            None => stdin_line("token")?,
        },
    };
    let who = Client::new(&opts.server, Some(&token))?.me().await?;
    let mut map = load();
    map.insert(key(&opts.server), token);
    let path = save(&map)?;
    eprintln!(
        "logged in to {} as {} (scope {}); token kept in {}",
        opts.server,
        who.user,
        who.scope,
        path.display()
    );
    Ok(())
}
