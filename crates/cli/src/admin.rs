//! `disgrafs admin`: users, tokens and groups, on the data directory's metadata (or `--meta`) directly,
//! beside a running server or without one.

use anyhow::{Context, bail};
use disgrafs_core::auth::Scope;
use disgrafs_store::{Accounts, CredentialKind};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

/// Where the accounts are: the same data directory and metadata store `serve` uses.
#[derive(clap::Args)]
pub struct Target {
    /// The data directory [default: ./disgrafs-data].
    #[arg(long, env = "DISGRAFS_DATA_DIR", default_value = "disgrafs-data")]
    data_dir: PathBuf,
    /// Metadata on PostgreSQL (as `serve --meta`) [default: SQLite in the data directory].
    #[arg(long, env = "DISGRAFS_META", value_name = "URL")]
    meta: Option<String>,
}

impl Target {
    async fn open(&self) -> anyhow::Result<Accounts> {
        Accounts::open(&self.data_dir, self.meta.as_deref())
            .await
            .context("cannot open the metadata store")
    }
}

#[derive(clap::Subcommand)]
pub enum AdminCommand {
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Print a new API token for a user (shown once: only its hash is kept), or revoke or list
    /// tokens.
    Token(TokenCommand),
    /// Groups: the files shared with a group (`PUT /api/files/ID/group`) are read, never
    /// changed, by its members.
    Group(GroupCommand),
}

#[derive(clap::Args)]
pub struct GroupCommand {
    /// The group.
    name: String,
    /// Create the group.
    #[arg(long)]
    create: bool,
    /// Add a user to the group (may be repeated).
    #[arg(long, value_name = "USER")]
    add: Vec<String>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        /// Read the password from the first line of standard input (without it, the user logs
        /// in with tokens only).
        #[arg(long)]
        password_stdin: bool,
        /// The largest scope the user's tokens and sessions may have.
        #[arg(long, default_value = "write")]
        role: Scope,
        #[command(flatten)]
        target: Target,
    },
    /// Set a user's password, read from the first line of standard input.
    Passwd {
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Show what a user's files hold, or set the bytes they may hold: uploads beyond are
    /// refused (507) and nothing stored is removed.
    Quota {
        name: String,
        /// A size (`10GiB`, `500MB`), or `none` for no limit [default: show only].
        #[arg(value_parser = parse_quota)]
        set: Option<Quota>,
        #[command(flatten)]
        target: Target,
    },
}

/// A quota to set: a size, or none.
#[derive(Clone, Copy)]
pub struct Quota(Option<u64>);

fn parse_quota(s: &str) -> Result<Quota, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Quota(None));
    }
    disgrafs_core::query::parse_size(s).map(|n| Quota(Some(n)))
}

/// `NAME: 1.5 GiB used of 10.0 GiB`.
fn usage_line(name: &str, u: &disgrafs_store::Usage) -> String {
    use disgrafs_core::query::human_size;
    let quota = u.quota.map_or("no limit".to_owned(), human_size);
    format!("{name}: {} used of {quota}", human_size(u.used))
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TokenCommand {
    #[command(subcommand)]
    action: Option<TokenAction>,
    /// The token's user.
    #[arg(long)]
    user: Option<String>,
    /// read, write or admin (at most the user's role).
    #[arg(long, default_value = "read")]
    scope: Scope,
    /// Lifetime, such as 30d, 12h, 15m or 90s [default: until revoked].
    #[arg(long, value_parser = parse_duration)]
    expires: Option<Duration>,
    /// Create the user first if there is none (its role: the token's scope), for provisioning.
    #[arg(long)]
    create: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Subcommand)]
enum TokenAction {
    /// Revoke a token (and any session or link) by its id.
    Revoke {
        id: i64,
        #[command(flatten)]
        target: Target,
    },
    /// A user's tokens, sessions and links: id, kind, scope, expiry (never their secrets).
    List {
        #[arg(long)]
        user: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `30d`, `12h`, `15m`, `90s` or a number of seconds (the lifetimes of tokens and share
/// links).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with d, h, m or s"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("{s:?}: expected a number with d, h, m or s")),
    };
    n.checked_mul(secs)
        .filter(|&t| t > 0 && t <= 10 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?}: from 1 second to 10 years"))
}

/// The first line of standard input, without its line end.
pub(crate) fn stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        bail!("no {what} on standard input");
    }
    Ok(line)
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    match cmd {
        AdminCommand::User(UserCommand::Add {
            name,
            password_stdin,
            role,
            target,
        }) => {
            let password = password_stdin.then(|| stdin_line("password")).transpose()?;
            target
                .open()
                .await?
                .add_user(&name, password.as_deref(), role)
                .await?;
            eprintln!("user {name} created (role {role})");
        }
        AdminCommand::Group(GroupCommand {
            name,
            create,
            add,
            target,
        }) => {
            if !create && add.is_empty() {
                bail!("admin group {name} needs --create or --add USER");
            }
            let accounts = target.open().await?;
            if create {
                accounts.create_group(&name).await?;
                eprintln!("group {name} created");
            }
            for user in add {
                accounts.add_to_group(&name, &user).await?;
                eprintln!("{user} added to group {name}");
            }
        }
        AdminCommand::User(UserCommand::Quota { name, set, target }) => {
            let accounts = target.open().await?;
            let usage = match set {
                Some(Quota(q)) => accounts.set_quota(&name, q).await?,
                None => {
                    accounts
                        .user(&name)
                        .await?
                        .with_context(|| format!("no user {name}"))?
                        .usage
                }
            };
            println!("{}", usage_line(&name, &usage));
        }
        AdminCommand::User(UserCommand::Passwd { name, target }) => {
            let password = stdin_line("password")?;
            target.open().await?.set_password(&name, &password).await?;
            eprintln!("password of {name} set");
        }
        AdminCommand::Token(TokenCommand {
            action: Some(TokenAction::Revoke { id, target }),
            ..
        }) => {
            if !target.open().await?.revoke(id).await? {
                bail!("no token with id {id}");
            }
            eprintln!("token {id} revoked");
        }
        AdminCommand::Token(TokenCommand {
            action: Some(TokenAction::List { user, target }),
            ..
        }) => {
            for c in target.open().await?.credentials(&user).await? {
                let expires = c.expires.map_or("never".to_owned(), |ms| {
                    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
                        .map_or(ms.to_string(), |t| t.to_string())
                });
                println!("{}\t{}\t{}\t{expires}", c.id, c.kind.as_str(), c.scope);
            }
        }
        AdminCommand::Token(TokenCommand {
            action: None,
            user,
            scope,
            expires,
            create,
            target,
        }) => {
            let Some(user) = user else {
                bail!("admin token needs --user NAME (or a subcommand: revoke, list)");
            };
            let accounts = target.open().await?;
            if create && accounts.user(&user).await?.is_none() {
                accounts.add_user(&user, None, scope).await?;
            }
            let t = accounts
                .issue(&user, CredentialKind::Api, scope, expires)
                .await?;
            // The token alone on stdout, for scripts; its id (for revoke) on stderr.
            println!("{}", t.secret);
            eprintln!("token {} for {user}, scope {scope}", t.id);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_a_unit_and_a_bound() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "0s", "5w", "d", "-1h", "99999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
